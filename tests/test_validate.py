"""`ticketpack validate`: a fresh export passes; a changed weight, a missing or future card, a truncated or foreign
file fail with exit 1 and a one-line reason; a missing path is a usage error (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import inflate_totals
from onnx import numpy_helper
from typer.testing import CliRunner

from ticketpack.cli.app import app
from ticketpack.runtime.card import CARD_KEY, ModelCard
from ticketpack.runtime.validate import ValidationReport, validate_model

runner = CliRunner()


def _card(model: onnx.ModelProto) -> ModelCard:
    return ModelCard.model_validate_json({p.key: p.value for p in model.metadata_props}[CARD_KEY])


def _set_card_json(model: onnx.ModelProto, text: str | None) -> None:
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != CARD_KEY]
    del model.metadata_props[:]
    for key, value in kept + ([(CARD_KEY, text)] if text is not None else []):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def _copy_with(src, dst, edit) -> str:
    model = onnx.load(str(src))
    edit(model)
    onnx.save(model, str(dst))
    return str(dst)


def _check(report: ValidationReport, name: str):
    return next(c for c in report.checks if c.name == name)


def test_a_fresh_export_passes_every_check(exported_digits):
    report = validate_model(exported_digits)
    assert report.passed, report.checks
    names = [c.name for c in report.checks]
    for expected in ("onnx checker", "card", "signature", "weights digest", "sparsity", "onnxruntime load", "smoke inference"):
        assert expected in names


def test_a_fresh_text_export_passes(exported_text):
    assert validate_model(exported_text).passed


def test_cli_exits_0_with_a_table_on_a_fresh_export(exported_digits):
    result = runner.invoke(app, ["validate", str(exported_digits)])
    assert result.exit_code == 0, result.output
    assert "weights digest" in result.output and "FAIL" not in result.output


def test_one_changed_weight_fails_the_digest_with_exit_1(exported_digits, tmp_path):
    def bump_one_weight(model):
        init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
        arr = numpy_helper.to_array(init).copy()
        flat = arr.reshape(-1)
        i = int(np.flatnonzero(flat)[0])
        flat[i] = flat[i] * 1.5
        init.CopyFrom(numpy_helper.from_array(arr, init.name))

    bad = _copy_with(exported_digits, tmp_path / "changed.onnx", bump_one_weight)
    report = validate_model(bad)
    assert not report.passed and not _check(report, "weights digest").passed
    result = runner.invoke(app, ["validate", bad])
    assert result.exit_code == 1
    assert "weights digest" in result.output and "changed after export" in result.output
    assert "Traceback" not in result.output


def test_a_copy_without_the_card_fails_with_exit_1_and_says_so(exported_digits, tmp_path):
    bad = _copy_with(exported_digits, tmp_path / "nocard.onnx", lambda m: _set_card_json(m, None))
    report = validate_model(bad)
    assert not _check(report, "card").passed
    assert _check(report, "onnxruntime load").passed  # still a runnable ONNX file, just not a ticketpack one
    result = runner.invoke(app, ["validate", bad])
    assert result.exit_code == 1
    assert "no ticketpack card" in result.output


def test_a_card_from_a_newer_schema_version_fails_and_says_upgrade(exported_digits, tmp_path):
    def future(model):
        card = json.loads(_card(model).model_dump_json())
        card["schema_version"] = 99
        _set_card_json(model, json.dumps(card))

    report = validate_model(_copy_with(exported_digits, tmp_path / "future.onnx", future))
    card_check = _check(report, "card")
    assert not card_check.passed and "99" in card_check.detail and "upgrade ticketpack" in card_check.detail


def test_a_card_that_overstates_sparsity_fails_the_sparsity_check(exported_digits, tmp_path):
    def lie(model):
        card = _card(model)
        layers = [l.model_copy(update={"nonzero": l.nonzero + 1}) for l in card.sparsity.layers]
        _set_card_json(model, card.model_copy(update={"sparsity": card.sparsity.model_copy(update={"layers": layers})}).model_dump_json())

    report = validate_model(_copy_with(exported_digits, tmp_path / "lie.onnx", lie))
    assert not _check(report, "sparsity").passed
    assert _check(report, "weights digest").passed


def test_strict_requires_a_recorded_parity_check(exported_digits, tmp_path):
    def drop_parity(model):
        _set_card_json(model, _card(model).model_copy(update={"parity": None}).model_dump_json())

    path = _copy_with(exported_digits, tmp_path / "noparity.onnx", drop_parity)
    assert validate_model(path).passed
    strict = validate_model(path, strict=True)
    assert not strict.passed and not _check(strict, "parity (strict)").passed


def test_a_truncated_file_fails_without_a_traceback(exported_digits, tmp_path):
    data = exported_digits.read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    report = validate_model(bad)
    assert not report.passed
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "Traceback" not in result.output


def test_a_file_that_is_not_onnx_fails_with_exit_1(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("these are not the weights you are looking for\n" * 20)
    report = validate_model(bad)
    assert not report.passed and report.checks[0].name == "onnx file" and "not an ONNX model" in report.checks[0].detail
    assert runner.invoke(app, ["validate", str(bad)]).exit_code == 1


def test_a_missing_path_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.onnx")])
    assert result.exit_code == 2 and "not found" in result.output


def test_json_prints_a_validation_report(exported_digits):
    result = runner.invoke(app, ["validate", str(exported_digits), "--json"])
    assert result.exit_code == 0
    report = ValidationReport.model_validate_json(result.stdout)
    assert report.passed and report.path == str(exported_digits)


@pytest.mark.parametrize("fmt,quantize", [("dense", "none"), ("sparse", "none"), ("compact", "int8"), ("sparse", "int8")])
def test_every_export_format_validates_strictly(digits_ticket, text_ticket, tmp_path, fmt, quantize):
    from ticketpack.export.exporter import export_model

    for name, ticket, level in (("digits", digits_ticket, 3), ("text", text_ticket, 2)):
        path = tmp_path / f"{name}-{fmt}-{quantize}.onnx"
        export_model(ticket, path, level=level, format=fmt, quantize=quantize, threads=1)
        report = validate_model(path, strict=True)
        assert report.passed, [c for c in report.checks if not c.passed]
        assert "weights non-zero" in _check(report, "sparsity").detail


def test_the_ci_example_uses_only_commands_and_flags_that_exist():
    import shlex
    from pathlib import Path

    import typer
    import yaml

    workflow = Path(__file__).resolve().parents[1] / "examples" / "ci" / "ticket-gate.yml"
    steps = yaml.safe_load(workflow.read_text())["jobs"]["export-validate-evaluate"]["steps"]
    lines = [line.strip() for step in steps for line in step.get("run", "").splitlines()]  # one command a line
    group = typer.main.get_command(app)
    used = 0
    for line in lines:
        if not line.startswith("ticketpack "):
            continue
        words = shlex.split(line.split(">")[0])
        command = group.commands[words[1]]
        known = {opt for p in command.params for opt in p.opts + p.secondary_opts}
        unknown = [w for w in words[2:] if w.startswith("-") and w not in known]
        assert not unknown, f"{words[1]}: unknown flags {unknown}"
        used += 1
    assert used >= 6


# ---- forged cards: what the file can prove is recomputed, what no card may say is refused ---------------------------


def _forge(src, dst, edit) -> str:
    """A copy of ``src`` whose card JSON was edited (the weights untouched: the digest still matches)."""
    def apply(model):
        card = json.loads(_card(model).model_dump_json())
        edit(card)
        _set_card_json(model, json.dumps(card))

    return _copy_with(src, dst, apply)


@pytest.fixture(scope="module")
def exported_dense_and_int8(digits_ticket, tmp_path_factory):
    from ticketpack.export.exporter import export_model

    out = tmp_path_factory.mktemp("formats")
    paths = {}
    for fmt, quantize in (("dense", "none"), ("sparse", "int8")):
        paths[fmt, quantize] = out / f"digits-{fmt}-{quantize}.onnx"
        export_model(digits_ticket, paths[fmt, quantize], level=3, format=fmt, quantize=quantize, threads=1)
    return paths


def _one_percent(card):
    card["sparsity"]["weights_remaining"] = 0.01


def _layer_remaining(card):
    card["sparsity"]["layers"][1]["weights_remaining"] = 0.01


def _layer_nonzero_and_remaining(card):
    layer = card["sparsity"]["layers"][0]
    layer["nonzero"] //= 10
    layer["weights_remaining"] = layer["nonzero"] / layer["total"]


def _total(card):
    card["sparsity"]["total"] *= 100


_inflated_totals = inflate_totals


def _not_quantized(card):
    card["export"]["quantize"] = "none"
    card["parity"]["min_argmax_agreement"] = card["parity"]["float_max_abs_diff"] = None


@pytest.mark.parametrize("fmt,edit,says", [
    (("compact", "none"), _one_percent, "1.0000% of the weights remain"),
    (("compact", "none"), _layer_remaining, "hidden.1.weight: the card says 1.0000%"),
    (("compact", "none"), _layer_nonzero_and_remaining, "non-zero weights in the graph, card says"),
    (("compact", "none"), _total, "its total says"),
    (("dense", "none"), _inflated_totals, "the graph stores"),
    (("sparse", "int8"), _one_percent, "1.0000% of the weights remain"),
    (("sparse", "int8"), _layer_nonzero_and_remaining, "non-zero weights in the graph, card says"),
    (("sparse", "int8"), _not_quantized, "stored int8, the card says not quantized"),
], ids=["weights-remaining-1%", "layer-remaining", "layer-nonzero", "total", "dense-totals", "int8-weights-remaining",
        "int8-layer-nonzero", "int8-claimed-float"])
def test_a_forged_sparsity_claim_is_recomputed_from_the_stored_weights(
        exported_digits, exported_dense_and_int8, tmp_path, fmt, edit, says):
    src = exported_digits if fmt == ("compact", "none") else exported_dense_and_int8[fmt]
    path = _forge(src, tmp_path / "forged.onnx", edit)
    report = validate_model(path)
    assert _check(report, "card").passed and _check(report, "weights digest").passed
    sparsity = _check(report, "sparsity")
    assert not sparsity.passed and says in sparsity.detail, sparsity.detail
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 1 and "sparsity" in result.stderr and "Traceback" not in result.output


def _extra_label(card):
    card["label_names"] = [*card["label_names"], "10"]


def _fewer_labels(card):
    card["label_names"] = card["label_names"][:-1]


@pytest.mark.parametrize("edit", [_extra_label, _fewer_labels], ids=["one-more", "one-fewer"])
def test_a_label_count_other_than_the_output_width_fails(exported_digits, tmp_path, edit):
    report = validate_model(_forge(exported_digits, tmp_path / "labels.onnx", edit))
    check = _check(report, "signature")
    assert not check.passed and "output has 10 classes" in check.detail


def _set(path: str, value):
    *parents, last = path.split(".")

    def edit(card):
        doc = card
        for key in parents:
            doc = doc[key] if not key.isdigit() else doc[int(key)]
        doc[int(last) if last.isdigit() else last] = value
    return edit


@pytest.mark.parametrize("field,value", [
    ("metrics.test_accuracy", 1.5),
    ("metrics.dense_test_accuracy", -0.1),
    ("metrics.test_examples", 0),
    ("sparsity.weights_remaining", 0.0),
    ("sparsity.weights_remaining", 1.5),
    ("sparsity.layers.0.weights_remaining", 2.0),
    ("sparsity.layers.0.nonzero", -1),
    ("parity.argmax_agreement", 1.01),
    ("parity.atol", 0.0),
    ("parity.max_abs_diff", -1.0),
    ("provenance.source_domain", "../../etc"),
    ("provenance.target_domain", "/etc"),
    ("provenance.level", -1),
    ("provenance.dataset", "digits\x00"),
    ("provenance.ticket_manifest_sha256", "not a digest"),
    ("weights_digest", "0" * 63),
    ("label_names", ["3", "3", "2", "1", "0", "5", "6", "7", "8", "9"]),
    ("label_names", ["only"]),
    ("export.compacted", {"hidden.0.weight": [300, 266]}),
], ids=lambda v: str(v)[:24])
def test_a_card_field_out_of_bounds_is_refused_naming_it(exported_digits, tmp_path, field, value):
    path = _forge(exported_digits, tmp_path / "bounds.onnx", _set(field, value))
    check = _check(validate_model(path), "card")
    assert not check.passed and "invalid ticketpack card at " + field.split(".")[0] in check.detail, check.detail
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_an_accuracy_that_is_no_share_of_its_test_examples_fails(exported_digits, tmp_path):
    path = _forge(exported_digits, tmp_path / "acc.onnx", _set("metrics.test_accuracy", 0.999))
    check = _check(validate_model(path), "card figures")
    assert not check.passed and "no share of its 270 test examples" in check.detail


def test_int8_tolerances_on_a_float_file_fail(exported_digits, tmp_path):
    """The relaxed int8 parity rules (an agreement floor instead of atol) claimed for a float graph."""
    path = _forge(exported_digits, tmp_path / "tol.onnx", _set("parity.min_argmax_agreement", 0.0))
    report = validate_model(path, strict=True)
    check = _check(report, "card figures")
    assert not check.passed and "int8 tolerances" in check.detail


def test_a_minimum_onnxruntime_below_what_the_graph_needs_fails(exported_digits, tmp_path):
    def newer_opset(model):
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = 22  # beyond the tested floor's opset 21; the card still says 1.18.0

    report = validate_model(_copy_with(exported_digits, tmp_path / "opset.onnx", newer_opset))
    check = _check(report, "onnxruntime version")
    assert not check.passed and "needs a newer one than 1.18.0" in check.detail
