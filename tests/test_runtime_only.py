"""The deployment side needs no torch: validate, evaluate, predict, serve and ticketpack.load on exported files.

In the full install these run on the session's exported models. CI also runs this file alone in a second fresh
venv with the runtime only (`pip install -e ".[serve]"`, no torch; see .ci/run), on models the full install
exported into TICKETPACK_RUNTIME_MODELS (digits.onnx, text.onnx); there the training commands must say which
extra to install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ticketpack.cli.app import app

MODELS_ENV = "TICKETPACK_RUNTIME_MODELS"
REVIEWS = Path(__file__).parent / "fixtures" / "reviews"
HAS_TORCH = importlib.util.find_spec("torch") is not None
runner = CliRunner()


@pytest.fixture(scope="module")
def models(request) -> dict[str, Path]:
    where = os.environ.get(MODELS_ENV)
    if where:
        return {"digits": Path(where) / "digits.onnx", "text": Path(where) / "text.onnx"}
    if not HAS_TORCH:
        pytest.skip(f"no torch and no {MODELS_ENV}: nothing to test on")
    return {"digits": request.getfixturevalue("exported_digits"), "text": request.getfixturevalue("exported_text")}


def test_the_runtime_install_has_no_torch_when_ci_says_so():
    if os.environ.get(MODELS_ENV):
        assert not HAS_TORCH, "the runtime-only venv must not have torch"
        for module in ("sklearn", "scipy", "safetensors", "matplotlib"):
            assert importlib.util.find_spec(module) is None, module


def test_validate_predict_and_evaluate_import_no_torch(models, tmp_path):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from ticketpack.cli.app import app\n"
        f"r = CliRunner().invoke(app, ['validate', {str(models['text'])!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        f"r = CliRunner().invoke(app, ['predict', {str(models['text'])!r}, 'a fine book', '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "import ticketpack\n"
        f"ticketpack.load({str(models['digits'])!r}).predict(__import__('numpy').zeros((1, 64)))\n"
        "print(sorted(m for m in ('torch', 'sklearn', 'scipy', 'safetensors') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_validate_passes_on_both_models(models):
    for path in models.values():
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 0, result.output


def test_predict_texts_and_images(models, tmp_path):
    result = runner.invoke(app, ["predict", str(models["text"]), "a wonderful book", "dull and slow", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["rows"]) == 2
    images = tmp_path / "images.npy"
    np.save(images, np.full((3, 8, 8), 4.0, dtype=np.float32))
    result = runner.invoke(app, ["predict", str(models["digits"]), "--input", str(images), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["rows"]) == 3


def test_evaluate_a_text_model_on_a_labelled_file_checks_its_digest(models, tmp_path):
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["evaluate", str(models["text"]), "--data-file", str(REVIEWS / "electronics.jsonl"),
                                 "--batch-sizes", "1,4", "--latency-budget", "0.2", "--threads", "1",
                                 "--report", str(report), "--verbose"])
    assert result.exit_code == 0, result.output
    assert "weights digest of text" in result.stderr  # a status line: printed with --verbose
    body = json.loads(report.read_text())
    assert body["model"]["weights_digest_verified"] and body["examples"] > 0


def test_the_python_api_loads_and_predicts(models):
    import ticketpack

    clf = ticketpack.load(models["text"])
    labels = clf.predict(["great", "awful"])
    assert len(labels) == 2 and set(labels) <= set(clf.labels)


def _card_json(path: Path) -> dict:
    """The card as the file stores it: JSON in the ONNX metadata, read without ticketpack's card model."""
    import onnx

    return json.loads({p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}["ticketpack"])


def test_the_text_card_alone_reproduces_the_ids_ticketpack_computes(models):
    """A client in another language has only the card: its fields and the rule it states. Reimplemented here from
    them with re and mmh3 (zlib for crc32 cards) alone (the bucket rule evaluated as written), the ids match
    ticketpack's exactly."""
    import re
    import zlib

    import mmh3

    import ticketpack

    prep = _card_json(models["text"])["preprocessing"]
    assert prep["kind"] == "text" and prep["hash"] == "murmur3" and prep["tokenizer"] == "regex"
    for step in ("str.lower", "U+0130", "re.findall", "ngram_separator", "bucket_rule", "MurmurHash3_x86_32",
                 "signed=False", "pad_id"):
        assert step in prep["featurization"], step

    def lower(text: str) -> str:  # the Unicode simple mapping, one character at a time, U+0130 to "i"
        return "".join("i" if ch == "\u0130" else ch.lower() for ch in text)

    def ids(text: str) -> list[int]:
        if prep["lowercase"]:
            text = lower(text)
        words = re.findall(prep["token_pattern"], text)
        tokens = list(words)
        for n in range(2, prep["ngrams"] + 1):
            tokens += [prep["ngram_separator"].join(words[i : i + n]) for i in range(len(words) - n + 1)]
        rule = {"crc32": zlib.crc32, "utf8": lambda t: t.encode("utf-8"), "num_buckets": prep["num_buckets"],
                "murmur3_32": lambda b, seed: mmh3.hash(b, seed, signed=False)}
        out = [eval(prep["bucket_rule"], {"__builtins__": {}}, {**rule, "token": t}) for t in tokens]
        out = out[: prep["max_tokens"]]
        return out + [prep["pad_id"]] * (prep["max_tokens"] - len(out))

    samples = [
        "A wonderful book, I couldn't put it down!",
        "Don't buy: the USB cable broke after 2 weeks... REFUND please",
        "Caf\u00e9 cr\u00e8me, na\u00efve fa\u00e7ade; Stra\u00dfe \u212aelvin \u0130stanbul \U0001F600 emoji",
        "tab\tand\nnew lines   and    spaces",
        " ".join(f"word{i}" for i in range(200)),  # more ids than max_tokens: cut
        "x",
        "\u039f\u0394\u039f\u03a3 \u00c9COLE \u03a3\u03a3 \u0130I",  # a final capital sigma, U+0130
    ]
    want = ticketpack.load(models["text"]).prepare(samples)
    got = np.array([ids(s) for s in samples], dtype=np.int64)
    assert got.shape == want.shape and np.array_equal(got, want)
    assert (got[4] != 0).all()  # the long sample fills every slot: the cut is part of what was checked


def test_a_card_written_before_storage_featurization_and_pixel_range_were_recorded_still_loads(models):
    from ticketpack.runtime.card import parse_card

    for name, path in models.items():
        doc = _card_json(path)
        for key in ("bitmask_encoded", "rank_encoded"):
            doc["export"].pop(key)
        for key in ("ngram_separator", "bucket_rule", "featurization", "train_pixel_min", "train_pixel_max"):
            doc["preprocessing"].pop(key, None)
        card = parse_card(json.dumps(doc), name)
        assert card.export.bitmask_encoded is None and card.export.rank_encoded is None
        prep = card.preprocessing
        if name == "text":
            assert prep.transform(["a fine book"]).shape == (1, prep.max_tokens)
        else:  # no training range recorded: pixel_min..pixel_max alone, and a pixel of 1e38 is still told
            assert prep.train_pixel_min is None and prep.input_range == (prep.pixel_min, prep.pixel_max)
            image = np.zeros((1, *prep.input_shape[1:]))
            assert prep.transform_checked(image)[1] is None
            image[0, 0, 0] = 1e38
            assert prep.transform_checked(image)[1].rows == (0,)


def test_serve_app_answers_predictions(models):
    pytest.importorskip("fastapi")
    import warnings

    from ticketpack.serve.app import create_app
    from ticketpack.serve.config import ModelSource, ServeConfig
    from ticketpack.serve.models import load_models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    config = ServeConfig(models=[ModelSource(name="reviews", path=models["text"])], threads=1, provider="cpu")
    with TestClient(create_app(config, load_models(config))) as client:
        r = client.post("/v1/models/reviews/predict", json={"inputs": ["good value"]})
        assert r.status_code == 200 and r.json()["predictions"][0]["label"]
        assert client.post("/v1/models/reviews/predict", json={"inputs": ["  "]}).status_code == 422


@pytest.mark.skipif(HAS_TORCH, reason="the full install has torch")
@pytest.mark.parametrize("args", [["search", "--out", "{tmp}/t"], ["export", "{tmp}", "--out", "{tmp}/m.onnx"],
                                  ["transfer", "{tmp}", "--target", "rot30", "--out", "{tmp}/run"],
                                  ["demo", "--out", "{tmp}/demo"]])
def test_training_commands_say_which_extra_to_install(args, tmp_path):
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert "pip install 'ticketpack[train]'" in result.stderr and "Traceback" not in result.output


class _FellBackSession:
    """What onnxruntime-gpu 1.31 gives when CUDA cannot start (seen with no GPU visible): its banner printed on
    stdout, then a session on the CPU alone."""

    def __init__(self, *args, **kwargs):
        print("*************** EP Error ***************")
        print("EP Error CUDA failure 100: no CUDA-capable device is detected when using ['CUDAExecutionProvider']")
        print("Falling back to ['CPUExecutionProvider'] and retrying.")

    def get_providers(self):
        return ["CPUExecutionProvider"]


def test_a_cuda_session_that_fell_back_to_the_cpu_is_not_reported_as_cuda(models, monkeypatch, capsys):
    import onnxruntime as ort

    from ticketpack.core.errors import TicketpackError
    from ticketpack.runtime.session import ProviderFallbackWarning, make_session

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", _FellBackSession)
    path = models["digits"]
    with pytest.raises(TicketpackError, match="could not start it .*no CUDA-capable device"):
        make_session(path, "cuda")
    with pytest.warns(ProviderFallbackWarning, match="running on the CPU"):
        assert make_session(path, "auto")[1] == "cpu"
    assert make_session(path, "cpu")[1] == "cpu"
    assert capsys.readouterr().out == ""  # the banner stays off stdout (`--json` output is JSON alone)
