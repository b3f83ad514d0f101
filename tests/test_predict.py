"""`ticketpack.load(...)` and `ticketpack predict`: raw inputs in, labels and probabilities out, ONNX Runtime only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

import ticketpack
from ticketpack.cli.app import app
from ticketpack.core.errors import TicketpackError
from ticketpack.data.kinds import InputRangeWarning
from ticketpack.evaluate.predict import Predictions
from ticketpack.runtime.card import CARD_KEY

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digit_images() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().images[:5].astype(np.float32)  # raw 0-16 intensities, (5, 8, 8)


def test_load_predicts_labels_and_probabilities_for_texts(exported_text):
    clf = ticketpack.load(exported_text, threads=1)
    texts = ["a gripping story, I loved every page", "dull plot and flat characters"]
    proba = clf.predict_proba(texts)
    assert proba.shape == (2, len(clf.labels)) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert clf.predict(texts) == [clf.labels[i] for i in proba.argmax(axis=1)]


def test_load_predicts_raw_digit_images_in_any_documented_shape(exported_digits, digit_images):
    clf = ticketpack.load(exported_digits, threads=1)
    labels = clf.predict(digit_images)
    assert len(labels) == 5 and set(labels) <= set(clf.labels)
    assert clf.predict(digit_images.reshape(5, 64)) == labels
    assert clf.predict(digit_images[:, None]) == labels


def test_cli_predicts_texts_given_as_arguments(exported_text):
    result = runner.invoke(app, ["predict", str(exported_text), "great read", "boring", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    preds = Predictions.model_validate_json(result.stdout)
    assert [r.text for r in preds.rows] == ["great read", "boring"]
    for row in preds.rows:
        assert row.label in preds.labels and sum(row.probabilities) == pytest.approx(1, abs=1e-4)
        assert row.probability == pytest.approx(max(row.probabilities), abs=1e-6)


def test_cli_prints_a_table_by_default(exported_text):
    result = runner.invoke(app, ["predict", str(exported_text), "great read", "--threads", "1"])
    assert result.exit_code == 0 and "great read" in result.stdout and "p(label)" in result.stdout


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".txt"])
def test_cli_reads_text_input_files(exported_text, tmp_path, suffix):
    texts = ["loved it", "hated it, returned it"]
    path = tmp_path / f"in{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    elif suffix == ".csv":
        path.write_text("text\n" + "".join(f'"{t}"\n' for t in texts))
    else:
        path.write_text("\n".join(texts) + "\n")
    result = runner.invoke(app, ["predict", str(exported_text), "--input", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert [r.text for r in Predictions.model_validate_json(result.stdout).rows] == texts


def test_cli_reads_an_npy_array_for_an_image_model(exported_digits, digit_images, tmp_path):
    path = tmp_path / "digits.npy"
    np.save(path, digit_images)
    result = runner.invoke(app, ["predict", str(exported_digits), "--input", str(path), "--json"])
    assert result.exit_code == 0, result.output
    preds = Predictions.model_validate_json(result.stdout)
    assert [r.label for r in preds.rows] == ticketpack.load(exported_digits).predict(digit_images)


def test_wrong_image_shape_is_a_usage_error(exported_digits, tmp_path):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros((3, 5), dtype=np.float32))
    result = runner.invoke(app, ["predict", str(exported_digits), "--input", str(path)])
    assert result.exit_code == 2 and "shape" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused_in_one_line(exported_digits, digit_images, tmp_path, value):
    images = digit_images.copy()
    images[3, 2, 5] = value
    path = tmp_path / "bad.npy"
    np.save(path, images)
    result = runner.invoke(app, ["predict", str(exported_digits), "--input", str(path)])
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    want = "error: image input 3 holds NaN or infinite values (1 of 5 images do): give finite pixel values"
    assert result.exit_code == 2 and lines == [want], result.output
    with pytest.raises(TicketpackError, match="NaN or infinite"):
        ticketpack.load(exported_digits).predict(images)


def test_pixels_far_beyond_the_training_range_are_predicted_with_a_warning(exported_digits, digit_images, tmp_path):
    images = digit_images.copy()
    images[1, 4, 4] = 1e38
    path = tmp_path / "far.npy"
    np.save(path, images)
    result = runner.invoke(app, ["predict", str(exported_digits), "--input", str(path), "--json"])
    assert result.exit_code == 0, result.output
    preds = Predictions.model_validate_json(result.stdout)
    assert len(preds.rows) == 5 and len(preds.warnings) == 1
    assert "1 of 5 images (#1) hold pixel values far outside the range the model was trained on, 0 to 16" in preds.warnings[0]
    warned = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warned) == 1 and "#1" in warned[0] and "1e+38" in warned[0]
    with pytest.warns(InputRangeWarning, match="far outside the range"):
        ticketpack.load(exported_digits).predict(images)
    ok = tmp_path / "ok.npy"
    np.save(ok, digit_images)
    result = runner.invoke(app, ["predict", str(exported_digits), "--input", str(ok), "--json"])
    assert result.exit_code == 0 and Predictions.model_validate_json(result.stdout).warnings == []
    assert "warning:" not in result.stderr


def test_texts_for_an_image_model_are_a_usage_error(exported_digits):
    result = runner.invoke(app, ["predict", str(exported_digits), "a digit, honest"])
    assert result.exit_code == 2 and "image model" in result.output


def test_non_string_text_rows_are_a_usage_error(exported_text, tmp_path):
    path = tmp_path / "numbers.jsonl"
    path.write_text(json.dumps({"text": 42}) + "\n")
    result = runner.invoke(app, ["predict", str(exported_text), "--input", str(path)])
    assert result.exit_code == 2 and "must be a string" in result.output


def test_an_empty_input_file_is_a_usage_error(exported_text, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    result = runner.invoke(app, ["predict", str(exported_text), "--input", str(path)])
    assert result.exit_code == 2 and "no rows" in result.output


def test_no_inputs_is_a_usage_error(exported_text):
    result = runner.invoke(app, ["predict", str(exported_text)])
    assert result.exit_code == 2 and "nothing to predict" in result.output


def test_a_model_without_a_card_explains_how_to_export(exported_text, tmp_path):
    model = onnx.load(str(exported_text))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != CARD_KEY]
    del model.metadata_props[:]
    for k, v in kept:
        e = model.metadata_props.add()
        e.key, e.value = k, v
    path = tmp_path / "plain.onnx"
    onnx.save(model, str(path))
    result = runner.invoke(app, ["predict", str(path), "hello"])
    assert result.exit_code == 2 and "ticketpack export" in result.output


def test_a_file_that_is_not_onnx_is_a_usage_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x00\x01not a model")
    result = runner.invoke(app, ["predict", str(path), "hello"])
    assert result.exit_code == 2 and "not a loadable ONNX model" in result.output


def test_prepared_tensors_of_the_wrong_dtype_are_refused(exported_text):
    clf = ticketpack.load(exported_text, threads=1)
    with pytest.raises(TicketpackError, match="int64"):
        clf.logits_from_inputs(np.zeros((1, clf.card.input.shape[1]), dtype=np.float32))


def test_prediction_and_the_evaluate_validate_predict_commands_never_import_torch(exported_digits, exported_text, tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import ticketpack

        clf = ticketpack.load({str(exported_text)!r}, threads=1)
        assert clf.predict(["a fine book"])[0] in clf.labels
        assert "torch" not in sys.modules, "ticketpack.load imported torch"

        from typer.testing import CliRunner
        from ticketpack.cli.app import app
        runner = CliRunner()
        for args in (
            ["validate", {str(exported_digits)!r}],
            ["predict", {str(exported_text)!r}, "great", "awful"],
            ["evaluate", {str(exported_digits)!r}, "--threads", "1", "--batch-sizes", "1", "--latency-budget", "0.05"],
        ):
            result = runner.invoke(app, args)
            assert result.exit_code == 0, (args, result.output)
        leaked = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not leaked, leaked[:5]
        print("torch-free")
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "torch-free" in proc.stdout
