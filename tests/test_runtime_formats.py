"""Every stored format runs wherever ONNX Runtime runs: each file loads, validates and gives the logits the newest
onnxruntime gave at export, and a sparse file's decoding is folded away when the session is created.

CI runs this file in the runtime-only venv twice (see .ci/run): with the newest onnxruntime, then with the oldest
one pyproject allows, on the files tests/make_runtime_models.py exported into TICKETPACK_RUNTIME_MODELS/formats.
The full install exports them here itself (so the logits check compares one onnxruntime with itself).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from ticketpack.runtime.cardio import read_card
from ticketpack.runtime.session import TESTED_FLOOR, release, required_onnxruntime
from ticketpack.runtime.storage import bitmask_parts
from ticketpack.runtime.validate import validate_model

MODELS_ENV = "TICKETPACK_RUNTIME_MODELS"
FORMATS = [f"{m}-{f}-{q}" for m in ("digits", "text") for f in ("dense", "compact", "sparse")
           for q in ("none", "int8", "int8-static")]


@pytest.fixture(scope="module")
def formats(tmp_path_factory) -> Path:
    where = os.environ.get(MODELS_ENV)
    if where:
        return Path(where) / "formats"
    if importlib.util.find_spec("torch") is None:
        pytest.skip(f"no torch and no {MODELS_ENV}: nothing to test on")
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from make_runtime_models import main

    out = tmp_path_factory.mktemp("runtime-models")
    main(out)
    return out / "formats"


@pytest.fixture(scope="module")
def expected(formats) -> dict[str, np.ndarray]:
    with np.load(formats / "expected.npz") as found:
        return dict(found)


def _session(path: Path, optimized: Path | None = None) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    if optimized is not None:  # basic: constant folding and nothing ONNX Runtime-specific, so onnx reads the result
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("stem", FORMATS)
def test_every_format_gives_the_logits_of_the_newest_onnxruntime(formats, expected, stem):
    x = expected[f"{stem.split('-')[0]}.x"]
    logits = _session(formats / f"{stem}.onnx").run(["logits"], {"input": x})[0]
    np.testing.assert_allclose(logits, expected[stem], atol=1e-5, rtol=0,
                               err_msg=f"onnxruntime {ort.__version__} vs {expected['onnxruntime']}")


@pytest.mark.parametrize("stem", FORMATS)
def test_every_format_passes_validate_strict_and_records_the_tested_minimum(formats, stem):
    path = formats / f"{stem}.onnx"
    report = validate_model(path, strict=True)
    assert report.passed, [c for c in report.failed()]
    assert "onnxruntime version" in {c.name for c in report.checks}
    assert read_card(path).export.min_onnxruntime == TESTED_FLOOR


@pytest.mark.parametrize("stem", [s for s in FORMATS if "-sparse-" in s])
def test_sparse_decoding_is_folded_into_plain_initializers_at_load(formats, stem, tmp_path):
    path = formats / f"{stem}.onnx"
    stored = onnx.load(str(path))
    encoded = [t.name.removesuffix(".bits") for t in stored.graph.initializer if t.name.endswith(".bits")]
    assert encoded, f"{stem}: nothing was bit-mask encoded, so this test would prove nothing"
    decode = {n.name for n in stored.graph.node if any(n.output[0].startswith(f"{w}/") or n.output[0] == w
                                                       for w in encoded)}
    _session(path, optimized=tmp_path / "optimized.onnx")
    optimized = onnx.load(str(tmp_path / "optimized.onnx"))
    left = sorted(decode & {n.name for n in optimized.graph.node})
    assert not left, f"onnxruntime {ort.__version__} left decode nodes: {left[:5]}"
    parts = {p for w in encoded for p in bitmask_parts(w)}
    assert not parts & {t.name for t in optimized.graph.initializer}
    assert {n.op_type for n in optimized.graph.node}.isdisjoint({"BitShift", "CumSum"})


def test_validate_fails_on_an_onnxruntime_older_than_the_cards_minimum(formats, tmp_path):
    from ticketpack.runtime.cardio import embed_card

    model = onnx.load(str(formats / "digits-compact-none.onnx"))
    card = read_card(formats / "digits-compact-none.onnx")
    embed_card(model, card.model_copy(update={"export": card.export.model_copy(update={"min_onnxruntime": "99.0.0"})}))
    onnx.save(model, str(tmp_path / "future.onnx"))
    report = validate_model(tmp_path / "future.onnx")
    assert [c.name for c in report.failed()] == ["onnxruntime version"]
    assert "pip install 'onnxruntime>=99.0.0'" in report.failed()[0].detail


def test_the_minimum_is_the_tested_floor_only_within_what_the_floor_implements():
    newest = ".".join(map(str, release(ort.__version__)))
    assert required_onnxruntime(8, 17, {""}) == TESTED_FLOOR
    assert required_onnxruntime(10, 21, {"", "ai.onnx"}) == TESTED_FLOOR
    assert required_onnxruntime(8, 22, {""}) == newest  # an opset 1.18 does not implement
    assert required_onnxruntime(11, 17, {""}) == newest  # an IR version it does not read
    assert required_onnxruntime(8, 17, {"", "com.microsoft"}) == newest  # contrib ops: untested at the floor
    assert release("1.19.2") > release("1.18.0") > release("1.17.3") and release("1.21.0.dev20250101") == (1, 21, 0)


def test_pyproject_allows_no_onnxruntime_older_than_the_tested_floor():
    import re
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    (floor,) = [re.sub(r"^onnxruntime\s*>=\s*", "", d) for d in pyproject["project"]["dependencies"]
                if d.startswith("onnxruntime")]
    assert release(floor) == release(TESTED_FLOOR)[: len(release(floor))]


SELF_CONTAINED = [f"self-contained-{m}-{f}-{q}" for m in ("digits", "text")
                  for f, q in (("compact", "none"), ("sparse", "int8"), ("dense", "int8-static"))]


@pytest.mark.parametrize("stem", SELF_CONTAINED)
def test_self_contained_files_take_raw_inputs_and_answer_as_the_newest_onnxruntime(formats, expected, stem):
    """`export --self-contained`: raw images or strings in, the labels and probabilities the newest onnxruntime gave
    (the graph computes them), through `ticketpack.load` and `validate --strict`, with the tested floor as minimum."""
    import ticketpack

    model = stem.split("-")[2]
    if f"self-contained-{model}.skipped" in expected:
        pytest.skip(f"no self-contained {model} file: {expected[f'self-contained-{model}.skipped']}")
    path = formats / f"{stem}.onnx"
    clf = ticketpack.load(path, provider="cpu", threads=1)
    assert clf.self_contained and read_card(path).export.raw_input is not None
    raw = expected[f"self-contained-{model}.raw"]
    raw = [str(t) for t in raw] if raw.dtype.kind == "U" else raw
    assert clf.predict(raw) == expected[f"{stem}.label"].tolist()
    np.testing.assert_allclose(clf.predict_proba(raw), expected[f"{stem}.probabilities"], atol=1e-5, rtol=0,
                               err_msg=f"onnxruntime {ort.__version__} vs {expected['onnxruntime']}")
    x = clf.card.preprocessing.transform(raw)  # the model's input tensor still runs, through the graph cut there
    assert clf.logits_from_inputs(x).argmax(axis=1).tolist() == [clf.labels.index(k) for k in clf.predict(raw)]
    report = validate_model(path, strict=True)
    assert report.passed, [c for c in report.failed()]
    assert read_card(path).export.min_onnxruntime == TESTED_FLOOR
