"""Every stage one shape: ``stage(inputs..., out, config=None, *, on_event=None, **overrides) -> Result``.

For each stage: a config object, keyword overrides of its fields, and both (the override wins) give the result of
the equivalent call; an unknown override is a one-line :class:`FieldError` naming it and listing the fields; the
result is the documented pydantic model.
"""

from __future__ import annotations

import warnings

import pytest
from conftest import tiny_config

from ticketpack.core.errors import FieldError


def _unknown(call, name: str, fields: list[str]) -> None:
    """``call()`` raises a one-line FieldError that names ``name`` and lists the config's ``fields``."""
    with pytest.raises(FieldError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    assert f"`{name}`" in message
    assert info.value.fields == (name,)
    assert all(f in message for f in fields), message


# --- export -------------------------------------------------------------------------------------------------------

def _export_key(result) -> tuple:
    return (result.level, result.source_kind, result.card.export.format, result.card.export.quantize,
            result.card.weights_digest, result.card.parity.max_abs_diff, result.card.sparsity.weights_remaining)


def test_export_config_overrides_and_both_agree(digits_ticket, tmp_path):
    from ticketpack.export.exporter import ExportConfig, ExportResult, export_model

    by_config = export_model(digits_ticket, tmp_path / "a.onnx", ExportConfig(level=1, format="dense", threads=1))
    by_keywords = export_model(digits_ticket, tmp_path / "b.onnx", level=1, format="dense", threads=1)
    both = export_model(digits_ticket, tmp_path / "c.onnx", ExportConfig(level=3, format="dense", threads=1), level=1)
    assert isinstance(by_config, ExportResult)
    assert by_config.level == 1 and by_config.card.export.format == "dense"
    assert _export_key(by_config) == _export_key(by_keywords) == _export_key(both)
    # the override replaced one field only: the config's others still apply
    sparse = export_model(digits_ticket, tmp_path / "d.onnx", ExportConfig(level=1, format="dense", threads=1),
                          format="sparse")
    assert (sparse.level, sparse.card.export.format) == (1, "sparse")


def test_export_unknown_or_bad_override_is_a_field_error(digits_ticket, tmp_path):
    from ticketpack.export.exporter import ExportConfig, export_model

    _unknown(lambda: export_model(digits_ticket, tmp_path / "m.onnx", levle=1), "levle", list(ExportConfig.model_fields))
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(FieldError) as info:
        export_model(digits_ticket, tmp_path / "m.onnx", format="zip")
    assert info.value.fields == ("format",) and "\n" not in str(info.value)
    with pytest.raises(FieldError, match="must be a ExportConfig"):
        export_model(digits_ticket, tmp_path / "m.onnx", {"level": 1})


# --- evaluate -----------------------------------------------------------------------------------------------------

def _evaluate_key(report) -> tuple:
    return (report.dataset, report.domain, report.split, report.seed, report.examples, report.threads,
            report.model.accuracy, [s.batch_size for s in report.model.latency], report.passed)


def test_evaluate_config_overrides_and_both_agree(exported_digits):
    from ticketpack.evaluate import EvaluationReport, evaluate_model
    from ticketpack.evaluate.config import EvaluateConfig

    seed = 5  # not the card's split seed: the reports say which seed they used
    fast = {"threads": 1, "batch_sizes": [1], "latency_budget_s": 0.05}
    by_config = evaluate_model(exported_digits, EvaluateConfig(split_seed=seed + 1, **fast))
    by_keywords = evaluate_model(exported_digits, split_seed=seed + 1, **fast)
    both = evaluate_model(exported_digits, EvaluateConfig(split_seed=seed, **fast), split_seed=seed + 1)
    assert isinstance(by_config, EvaluationReport)
    assert by_config.seed == seed + 1 and by_config.threads == 1
    assert _evaluate_key(by_config) == _evaluate_key(by_keywords) == _evaluate_key(both)
    with pytest.warns(DeprecationWarning, match="split_seed"):  # the old spelling still works
        old = evaluate_model(exported_digits, seed=seed + 1, batch_sizes="1", threads=1, latency_budget_s=0.05)
    assert _evaluate_key(old) == _evaluate_key(by_config)


def test_evaluate_unknown_override_is_a_field_error(exported_digits):
    from ticketpack.evaluate import evaluate_model
    from ticketpack.evaluate.config import EvaluateConfig

    _unknown(lambda: evaluate_model(exported_digits, treads=1), "treads", list(EvaluateConfig.model_fields))


# --- validate -----------------------------------------------------------------------------------------------------

def test_validate_config_overrides_and_both_agree(exported_digits):
    from ticketpack.runtime.config import ValidateConfig
    from ticketpack.runtime.validate import ValidationReport, validate_model

    def key(report):
        return report.strict, report.passed, [(c.name, c.passed) for c in report.checks]

    by_config = validate_model(exported_digits, ValidateConfig(strict=True))
    by_keywords = validate_model(exported_digits, strict=True)
    both = validate_model(exported_digits, ValidateConfig(strict=False), strict=True)
    assert isinstance(by_config, ValidationReport)
    assert by_config.strict and "parity (strict)" in [c.name for c in by_config.checks]
    assert key(by_config) == key(by_keywords) == key(both)
    assert not validate_model(exported_digits, ValidateConfig(strict=True), strict=False).strict
    events = []
    validate_model(exported_digits, on_event=events.append)
    assert [e.message for e in events][:2] == ["onnx file", "onnx checker"]
    assert {e.stage for e in events} == {"validate"}


def test_validate_unknown_override_is_a_field_error(exported_digits):
    from ticketpack.runtime.config import ValidateConfig
    from ticketpack.runtime.validate import validate_model

    _unknown(lambda: validate_model(exported_digits, stricct=True), "stricct", list(ValidateConfig.model_fields))


# --- predict ------------------------------------------------------------------------------------------------------

def test_predict_config_overrides_and_both_agree(exported_text):
    from ticketpack.evaluate.config import PredictConfig
    from ticketpack.evaluate.predict import Predictions, predict_rows

    texts = ["a wonderful, moving book", "dull and far too long"]
    by_config = predict_rows(exported_text, texts, config=PredictConfig(provider="cpu", threads=1))
    by_keywords = predict_rows(exported_text, texts, provider="cpu", threads=1)
    both = predict_rows(exported_text, texts, config=PredictConfig(provider="cpu", threads=2), threads=1)
    assert isinstance(by_config, Predictions)
    assert len(by_config.rows) == 2
    assert by_config == by_keywords == both


def test_predict_unknown_override_is_a_field_error(exported_text):
    from ticketpack.evaluate.config import PredictConfig
    from ticketpack.evaluate.predict import predict_rows

    _unknown(lambda: predict_rows(exported_text, ["x"], providr="cpu"), "providr", list(PredictConfig.model_fields))


# --- search -------------------------------------------------------------------------------------------------------

def _search_key(manifest) -> tuple:
    return (manifest.config.seed, manifest.init_file.sha256,
            [(r.round, r.mask_sha256, r.test_accuracy) for r in manifest.rounds])


def test_search_config_overrides_and_both_agree(tmp_path):
    from ticketpack.search import SearchConfig, TicketManifest, search

    config = tiny_config(train={"epochs": 1}, prune={"rounds": 1}, seed=1)
    by_config = search(config, tmp_path / "a")
    by_keywords = search(None, tmp_path / "b", train={"epochs": 1}, prune={"rounds": 1}, threads=1, seed=1)
    both = search(config.model_copy(update={"seed": 7}), tmp_path / "c", seed=1)
    assert isinstance(by_config, TicketManifest)
    assert by_config.config.seed == 1 and len(by_config.rounds) == 2
    assert _search_key(by_config) == _search_key(by_keywords) == _search_key(both)
    _unknown(lambda: search(config, tmp_path / "d", epochs=1), "epochs", list(SearchConfig.model_fields))
    assert not (tmp_path / "d").exists()


# --- transfer -----------------------------------------------------------------------------------------------------

def test_transfer_config_overrides_and_both_agree(digits_ticket, tmp_path):
    from ticketpack.transfer import TransferConfig, TransferReport, run_transfer

    fields = {"ticket": str(digits_ticket), "target": "rot45", "inits": ["ticket"], "levels": [1], "seeds": 1,
              "train": {"epochs": 1}}

    def key(report):
        return report.inits, report.levels, report.seeds, [(r.job_id, r.target_test_accuracy) for r in report.results]

    by_config = run_transfer(TransferConfig(**fields), tmp_path / "a")
    by_keywords = run_transfer(None, tmp_path / "b", **fields)
    both = run_transfer(TransferConfig(**{**fields, "levels": [3]}), tmp_path / "c", levels=[1])
    assert isinstance(by_config, TransferReport)
    assert by_config.levels == [1] and len(by_config.results) == 1
    assert key(by_config) == key(by_keywords) == key(both)
    _unknown(lambda: run_transfer(TransferConfig(**fields), tmp_path / "d", sedes=2), "sedes",
             list(TransferConfig.model_fields))
    assert not (tmp_path / "d").exists()


def test_overrides_leave_the_config_object_unchanged():
    from ticketpack.core.config_files import with_overrides
    from ticketpack.export.exporter import ExportConfig

    config = ExportConfig(level=2, atol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        merged = with_overrides(ExportConfig, config, {"format": "sparse"}, "export")
    assert (merged.level, merged.atol, merged.format) == (2, 1e-3, "sparse")
    assert (config.level, config.format) == (2, "compact")
    assert with_overrides(ExportConfig, config, {}, "export") is config
    assert with_overrides(ExportConfig, None, {}, "export") == ExportConfig()


# --- serve --------------------------------------------------------------------------------------------------------

SERVE_ONCE = """
import json, os, signal, sys, threading
from ticketpack.serve.app import serve
events = []
def ready(url, models):
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
result = serve([sys.argv[1]], port=0, access_log=False, on_ready=ready, on_event=lambda e: events.append(e.message))
print(json.dumps({"result": result.model_dump(), "events": events}))
"""


def test_serve_takes_models_config_and_overrides_and_returns_its_result(exported_digits):
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", SERVE_ONCE, f"digits={exported_digits}"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    result = out["result"]
    assert result["models"] == ["digits"] and result["workers"] == 1 and result["seconds"] > 0
    assert result["url"].startswith("http://127.0.0.1:") and not result["url"].endswith(":0")
    assert out["events"] == ["validating 1 model", f"serving on {result['url']}"]


def test_serve_refuses_unknown_overrides_and_no_models_before_binding_anything(exported_digits):
    pytest.importorskip("fastapi")
    from ticketpack.serve.app import serve
    from ticketpack.serve.config import ServeConfig

    _unknown(lambda: serve([exported_digits], prot=0), "prot", list(ServeConfig.model_fields))
    with pytest.raises(FieldError) as info:
        serve()
    assert info.value.fields == ("models",)
    with pytest.raises(FieldError) as info:
        serve([exported_digits], workers=0)
    assert info.value.fields == ("workers",)


def test_the_old_serve_call_still_works_with_a_warning(tmp_path):
    pytest.importorskip("fastapi")
    from ticketpack.core.errors import TicketpackError
    from ticketpack.serve.app import serve
    from ticketpack.serve.config import ModelSource, ServeConfig

    config = ServeConfig(models=[ModelSource(name="m", path=tmp_path / "missing.onnx")])
    with pytest.warns(DeprecationWarning, match="serve\\(config\\) is deprecated"), pytest.raises(TicketpackError):
        serve(config)  # the models load (and fail here) before any port is bound
