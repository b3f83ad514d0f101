"""`ticketpack export --self-contained`: the preprocessing in the graph, raw inputs in, class names out.

The image (digits) and table models are exported self-contained and compared with the ordinary files of the same
weights; the parity gate refuses a graph whose preprocessing is off and writes nothing; the card records the raw
input; old files (no field) load as before; the CLI flag works and a model that cannot be self-contained fails in one
line with exit 2.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

import ticketpack
from ticketpack.cli.app import app
from ticketpack.core.errors import GateFailed, TicketpackError
from ticketpack.data.kinds.image import ImagePreprocessing
from ticketpack.data.kinds.tabular import TabularPreprocessing
from ticketpack.runtime.cardio import read_card
from ticketpack.runtime.validate import validate_model

runner = CliRunner()
NAMES = ["cat", "dog", "emu"]


def _digits_raw(n: int = 300) -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().images[:n]  # (N, 8, 8) whole numbers 0..16, as the dataset stores them


def _run_raw_graph(kind, raw) -> np.ndarray:
    """The kind's raw nodes alone, on ONNX Runtime."""
    import onnxruntime as ort
    from onnx import helper

    g = kind.raw_graph()
    out = helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph(g.nodes, "raw", [g.input], [out], g.initializers),
                              opset_imports=[helper.make_opsetid(d, v) for d, v in g.opsets.items()], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"raw": kind.raw_array(raw)})[0]


# ---------------------------------------------------------------------------------------------- the raw nodes alone
@pytest.mark.parametrize("kind, raw, dtype", [
    (ImagePreprocessing(channels=3, height=5, width=7, pixel_min=0, pixel_max=255, mean=[120.3, 99.1, 3.7],
                        std=[55.2, 41.3, 0.77]),
     np.random.default_rng(0).integers(0, 256, (40, 5, 7, 3)).astype(np.float64), "uint8"),
    (ImagePreprocessing(channels=1, height=8, width=8, pixel_min=0, pixel_max=1, mean=0.3, std=0.2),
     np.random.default_rng(1).random((40, 8, 8)), "float32"),
    (ImagePreprocessing(channels=1, height=4, width=4, pixel_min=0, pixel_max=255, mean=100.0, std=60.0,
                        resize=[6, 6]),
     [np.random.default_rng(2).integers(0, 256, (9, 7)).astype(np.float64)] * 3, "float32"),
])
def test_image_raw_graph_gives_what_transform_gives_bit_for_bit(kind, raw, dtype):
    assert kind.raw_dtype == dtype
    assert kind.raw_array(raw).dtype == np.dtype(dtype)
    got = _run_raw_graph(kind, raw)
    want = kind.transform(raw)
    assert got.dtype == want.dtype == np.float32 and np.array_equal(got, want)


def test_table_raw_graph_gives_what_transform_gives_bit_for_bit():
    kind = TabularPreprocessing(columns=list("abcd"), mean=[1.5, 2.25, -3.1, 1e3], std=[0.3, 1.7, 2.2, 1e2])
    raw = np.random.default_rng(0).normal(size=(500, 4)) * 100
    assert kind.raw_array(raw).dtype == np.float64
    assert np.array_equal(_run_raw_graph(kind, raw), kind.transform(raw))
    rows = [dict(zip("abcd", r)) for r in raw[:3].tolist()]  # objects keyed by column, as JSON rows come
    assert np.array_equal(_run_raw_graph(kind, rows), kind.transform(rows))


def test_uint8_images_must_hold_whole_8_bit_values():
    kind = ImagePreprocessing(channels=1, height=2, width=2, pixel_min=0, pixel_max=16)
    with pytest.raises(TicketpackError, match="whole numbers from 0 to 255"):
        kind.raw_array(np.full((1, 2, 2), 3.5))
    with pytest.raises(TicketpackError, match="whole numbers from 0 to 255"):
        kind.raw_array(np.full((1, 2, 2), 256.0))
    assert kind.raw_array(np.full((1, 2, 2), 16.0)).tolist() == [[[[16], [16]], [[16], [16]]]]


# ---------------------------------------------------------------------------------------------- digits (images)
@pytest.fixture(scope="module")
def self_contained_digits(digits_ticket, tmp_path_factory) -> Path:
    """The same weights as `exported_digits` (level 3, compact), exported self-contained."""
    from ticketpack.export.exporter import export_model

    out = tmp_path_factory.mktemp("self-contained") / "digits-sc.onnx"
    export_model(digits_ticket, out, level=3, format="compact", threads=1, self_contained=True)
    return out


def test_card_records_the_raw_input(self_contained_digits, exported_digits):
    card = read_card(self_contained_digits)
    assert card.export.self_contained is True
    assert card.export.raw_input.model_dump() == {"name": "raw", "dtype": "uint8", "shape": ["batch", 8, 8, 1]}
    assert card.input.name == "input"  # the model's input, now a tensor inside the graph
    model = onnx.load(str(self_contained_digits))
    assert [i.name for i in model.graph.input] == ["raw"]
    assert [o.name for o in model.graph.output] == ["logits", "probabilities", "label"]
    old = read_card(exported_digits)  # an ordinary file records neither
    assert old.export.self_contained is None and old.export.raw_input is None


def test_labels_and_probabilities_equal_the_ordinary_predictors(self_contained_digits, exported_digits):
    raw = _digits_raw()
    sc, plain = ticketpack.load(self_contained_digits, threads=1), ticketpack.load(exported_digits, threads=1)
    assert sc.self_contained and not plain.self_contained
    assert sc.predict(raw) == plain.predict(raw)
    np.testing.assert_allclose(sc.predict_proba(raw), plain.predict_proba(raw), atol=1e-5)
    np.testing.assert_allclose(sc.logits(raw), plain.logits(raw), atol=1e-4)
    # the paths that feed the model's input tensor (evaluate, latency) run the file cut at that tensor
    x = plain.prepare(raw)
    np.testing.assert_allclose(sc.logits_from_inputs(x), plain.logits_from_inputs(x), atol=1e-4)
    assert sc.session.get_inputs()[0].name == "input"


def test_validate_and_evaluate_pass_on_a_self_contained_file(self_contained_digits):
    from ticketpack.evaluate import evaluate_model

    report = validate_model(self_contained_digits, strict=True)
    assert report.passed, report.failed()
    checks = {c.name: c.detail for c in report.checks}
    assert "raw uint8" in checks["signature"]
    result = evaluate_model(self_contained_digits, threads=1, batch_sizes=(1,), latency_budget_s=0.05)
    assert result.model.accuracy == pytest.approx(read_card(self_contained_digits).metrics.test_accuracy)


@pytest.mark.parametrize("fmt, quantize", [("dense", "none"), ("sparse", "int8"), ("compact", "int8-static")])
def test_every_format_exports_self_contained(digits_ticket, tmp_path, fmt, quantize):
    from ticketpack.export.exporter import export_model

    out = tmp_path / f"{fmt}-{quantize}.onnx"
    result = export_model(digits_ticket, out, level=3, format=fmt, quantize=quantize, threads=1, self_contained=True)
    assert result.card.export.self_contained and result.card.export.format == fmt
    raw = _digits_raw(200)
    clf = ticketpack.load(out, threads=1)
    logits = clf.logits_from_inputs(clf.prepare(raw))  # the Python featurizer + the model graph
    assert clf.predict(raw) == [clf.labels[i] for i in logits.argmax(axis=1)]
    np.testing.assert_allclose(clf.logits(raw), logits, atol=1e-5)
    assert validate_model(out).passed


def test_the_parity_gate_refuses_a_broken_graph_and_writes_nothing(digits_ticket, tmp_path, monkeypatch):
    from onnx import numpy_helper

    from ticketpack.export.exporter import export_model

    original = ImagePreprocessing.raw_graph

    def off_by_a_little(self, output="input"):
        graph = original(self, output)
        std = next(t for t in graph.initializers if t.name == "raw/std")
        std.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(std) * np.float32(1.01), "raw/std"))
        return graph

    monkeypatch.setattr(ImagePreprocessing, "raw_graph", off_by_a_little)
    out = tmp_path / "broken.onnx"
    with pytest.raises(GateFailed, match="self-contained parity: the graph's model input differ"):
        export_model(digits_ticket, out, level=3, threads=1, self_contained=True)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_old_files_without_the_field_still_load(exported_digits, tmp_path):
    from conftest import forge_card

    def drop(card: dict) -> None:  # a card as ticketpack wrote it before the fields existed
        del card["export"]["self_contained"], card["export"]["raw_input"]

    old = forge_card(exported_digits, tmp_path / "old.onnx", drop)
    clf = ticketpack.load(old)
    assert clf.card.export.self_contained is None and not clf.self_contained
    assert clf.predict(_digits_raw(5)) == ticketpack.load(exported_digits).predict(_digits_raw(5))
    assert validate_model(old).passed


def test_a_card_claiming_self_contained_needs_its_raw_input(exported_digits):
    from ticketpack.runtime.card import parse_card

    text = json.loads(read_card(exported_digits).model_dump_json())
    text["export"]["self_contained"] = True
    with pytest.raises(TicketpackError, match="raw_input is recorded exactly when self_contained"):
        parse_card(json.dumps(text))


def test_cli_flag(digits_ticket, tmp_path):
    out = tmp_path / "cli.onnx"
    result = runner.invoke(app, ["export", str(digits_ticket), "-o", str(out), "--level", "3", "--self-contained",
                                 "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["card"]["export"]["raw_input"]["dtype"] == "uint8"
    plain = tmp_path / "plain.onnx"
    result = runner.invoke(app, ["export", str(digits_ticket), "-o", str(plain), "--level", "3",
                                 "--no-self-contained", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert read_card(plain).export.self_contained is None


def test_cli_refuses_a_model_whose_preprocessing_has_no_onnx_form(digits_ticket, tmp_path, monkeypatch):
    def none(self, output="input"):
        raise TicketpackError("image preprocessing has no ONNX form")

    monkeypatch.setattr(ImagePreprocessing, "raw_graph", none)
    out = tmp_path / "no.onnx"
    result = runner.invoke(app, ["export", str(digits_ticket), "-o", str(out), "--level", "3", "--self-contained",
                                 "--threads", "1"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "--self-contained" in lines[0] and "no ONNX form" in lines[0], result.output
    assert not out.exists()


def test_serve_answers_from_the_self_contained_graph(self_contained_digits, monkeypatch):
    pytest.importorskip("fastapi")
    from starlette.testclient import TestClient

    from ticketpack.serve.app import create_app
    from ticketpack.serve.config import ModelSource, ServeConfig
    from ticketpack.serve.models import load_models

    raw = _digits_raw(20)
    want = ticketpack.load(self_contained_digits).predict(raw)
    config = ServeConfig(models=[ModelSource.parse(str(self_contained_digits))], provider="cpu")
    models = load_models(config, validate=True)
    cut = []  # the graph cut at the model input must not be opened: serving runs the whole file from raw pixels
    monkeypatch.setattr("ticketpack.runtime.selfcontained.model_input_graph", lambda *a: cut.append(a))
    with TestClient(create_app(config, models)) as client:
        answer = client.post(f"/v1/models/{self_contained_digits.stem}/predict", json={"inputs": raw.tolist()})
    assert answer.status_code == 200, answer.text
    assert [p["label"] for p in answer.json()["predictions"]] == want and not cut


# ---------------------------------------------------------------------------------------------- a table
def _write_table(root: Path) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for dom, shift in (("day", 0.0), ("night", 1.0)):
        y = np.repeat(np.arange(3), 40)
        x = rng.normal(size=(120, 5))
        x[:, 0] += 3 * y + shift
        x[:, 1] -= 2 * y
        lines = ["f0,f1,f2,f3,f4,label"] + [",".join(f"{v:.4f}" for v in row) + f",{NAMES[k]}" for row, k in zip(x, y)]
        (root / f"{dom}.csv").write_text("\n".join(lines) + "\n")


def test_a_table_model_exported_self_contained(tmp_path):
    from ticketpack.export.exporter import export_model
    from ticketpack.search import SearchConfig, search

    _write_table(tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search(SearchConfig(dataset=str(tmp_path / "data"), source="day", prune={"rounds": 1},
                            train={"iterations": 20, "batch_size": 16}, threads=1), tmp_path / "ticket")
    sc, plain = tmp_path / "sc.onnx", tmp_path / "plain.onnx"
    export_model(tmp_path / "ticket", sc, level=1, threads=1, self_contained=True)
    export_model(tmp_path / "ticket", plain, level=1, threads=1)
    card = read_card(sc)
    assert card.export.raw_input.model_dump() == {"name": "raw", "dtype": "float64", "shape": ["batch", 5]}
    rows, _ = card.preprocessing.read_inputs(tmp_path / "data" / "night.csv")
    a, b = ticketpack.load(sc, threads=1), ticketpack.load(plain, threads=1)
    assert a.predict(rows) == b.predict(rows) and set(a.predict(rows)) <= set(NAMES)
    np.testing.assert_allclose(a.predict_proba(rows), b.predict_proba(rows), atol=1e-5)
    assert validate_model(sc, strict=True).passed


# ---------------------------------------------------------------------------------------------- text
def test_a_text_model_exported_self_contained(text_ticket, exported_text, tmp_path):
    from ticketpack.export.exporter import export_model

    card = read_card(exported_text)
    try:
        card.preprocessing.raw_graph()
    except TicketpackError as exc:
        pytest.skip(f"the text preprocessing has no ONNX form here: {exc}")
    out = tmp_path / "text-sc.onnx"
    export_model(text_ticket, out, level=2, format="compact", threads=1, self_contained=True)
    sc = read_card(out)
    assert sc.export.raw_input.dtype == "string" and sc.export.opset >= 20  # string ops: raised from the default 17
    texts = ["A great book, really great!", "terrible plot and boring characters", "İstanbul ΣΑΣ naïve café",
             "good", "the ending was a let-down; the start was wonderful"]
    a, b = ticketpack.load(out, threads=1), ticketpack.load(exported_text, threads=1)
    assert a.predict(texts) == b.predict(texts)
    np.testing.assert_allclose(a.predict_proba(texts), b.predict_proba(texts), atol=1e-5)
    assert validate_model(out, strict=True).passed
