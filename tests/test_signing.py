"""`export --sign KEY`, `validate --verify PUB`: a good signed file passes; a one-bit change, a card edited after
signing (the claims the file cannot prove: accuracy, labels, preprocessing, provenance), another key or a missing
signature fail with exit 1 and one line; a bad key or a missing `sign` extra is a one-line usage error (exit 2)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from conftest import forge_card, inflate_totals
from typer.testing import CliRunner

from ticketpack.cli.app import app
from ticketpack.runtime.signing import signature_path
from ticketpack.runtime.validate import validate_model

pytest.importorskip("model_signing", reason="needs the sign extra: pip install 'ticketpack[sign]'")

runner = CliRunner()


@pytest.fixture(scope="module")
def signed(digits_ticket, signing_keys, tmp_path_factory) -> Path:
    """The digits ticket exported (compact) and signed by the command line: ``model.onnx`` and ``model.onnx.sig``."""
    out = tmp_path_factory.mktemp("signed") / "model.onnx"
    result = runner.invoke(app, ["export", str(digits_ticket), "--level", "3", "--threads", "1", "--out", str(out),
                                 "--sign", str(signing_keys[0])])
    assert result.exit_code == 0, result.output
    assert "signature" in result.stdout
    return out


def _copy(signed: Path, dst: Path) -> Path:
    """A copy of the signed file with its signature beside it, under another name."""
    shutil.copy(signed, dst)
    shutil.copy(signature_path(signed), signature_path(dst))
    return dst


def _forge(signed: Path, dst: Path, edit) -> Path:
    """A copy whose card JSON was edited after signing (the weights untouched, so the digest still matches)."""
    return forge_card(signed, _copy(signed, dst), edit)


def _validate(path: Path, public: Path):
    return runner.invoke(app, ["validate", str(path), "--verify", str(public)])


def _error_lines(result) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if ln.strip()]


def test_the_signature_sits_beside_the_model_and_a_good_signed_file_passes(signed, signing_keys):
    assert signature_path(signed) == signed.with_name("model.onnx.sig") and signature_path(signed).is_file()
    report = validate_model(signed, strict=True, verify=signing_keys[1])
    assert report.passed, [c for c in report.checks if not c.passed]
    check = next(c for c in report.checks if c.name == "key signature")
    assert check.passed and "verifies" in check.detail
    result = _validate(signed, signing_keys[1])
    assert result.exit_code == 0, result.output
    assert "key signature" in result.stdout


def test_a_renamed_copy_with_its_signature_still_verifies(signed, signing_keys, tmp_path):
    assert validate_model(_copy(signed, tmp_path / "renamed.onnx"), verify=signing_keys[1]).passed


@pytest.mark.parametrize("where", [0.25, 0.5, 0.999])
def test_one_bit_changed_after_signing_fails_verify_with_exit_1_and_one_line(signed, signing_keys, tmp_path, where):
    path = _copy(signed, tmp_path / "flipped.onnx")
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    path.write_bytes(bytes(data))
    report = validate_model(path, verify=signing_keys[1])
    check = next(c for c in report.checks if c.name == "key signature")
    assert not check.passed and "changed after it was signed" in check.detail
    result = _validate(path, signing_keys[1])
    assert result.exit_code == 1, result.output
    errors = _error_lines(result)
    assert len(errors) == 1 and errors[0].startswith("error:") and "changed after it was signed" in errors[0]
    assert "Traceback" not in result.output


def _reverse_labels(card):
    card["label_names"] = card["label_names"][::-1]


def _accuracy(card):
    card["metrics"]["test_accuracy"] = card["metrics"]["reference_test_accuracy"] = 269 / 270  # a share of 270: only
    # the signature can tell it from the truth


def _preprocessing(card):
    card["preprocessing"]["std"] = 8.0


def _dataset(card):
    card["provenance"]["dataset"] = "../../etc"


def _inflated_totals(card):
    """A consistent lie about the unpruned size (1% remaining): compaction removed the weights it would count, so
    only the signature holds it for a compact file."""
    inflate_totals(card)


@pytest.mark.parametrize("edit", [_reverse_labels, _accuracy, _preprocessing, _dataset, _inflated_totals],
                         ids=["labels-reversed", "accuracy", "preprocessing", "dataset-path", "weights-remaining-1%"])
def test_a_card_edited_after_signing_is_caught_by_the_signature(signed, signing_keys, tmp_path, edit):
    path = _forge(signed, tmp_path / "forged.onnx", edit)
    report = validate_model(path, strict=True, verify=signing_keys[1])
    failed = [c.name for c in report.checks if not c.passed]
    # the file cannot prove these claims, so every other check passes: it is the signature that refuses the file
    assert failed == ["key signature"], report.checks
    result = _validate(path, signing_keys[1])
    assert result.exit_code == 1 and "changed after it was signed" in result.stderr


def test_a_signature_made_with_another_key_fails(signed, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = tmp_path / "other.pub.pem"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    result = _validate(signed, other)
    assert result.exit_code == 1 and "signed with another key" in result.stderr


def test_a_file_without_its_signature_fails_and_says_how_to_sign(signed, signing_keys, tmp_path):
    path = tmp_path / "unsigned.onnx"
    shutil.copy(signed, path)
    result = _validate(path, signing_keys[1])
    assert result.exit_code == 1 and "no signature at" in result.stderr and "--sign" in result.stderr


def test_a_damaged_signature_file_fails_in_one_line(signed, signing_keys, tmp_path):
    path = _copy(signed, tmp_path / "model.onnx")
    signature_path(path).write_text('{"mediaType": "nonsense"}')
    result = _validate(path, signing_keys[1])
    assert result.exit_code == 1 and "not a readable model-signing signature" in result.stderr
    assert len(_error_lines(result)) == 1 and "Traceback" not in result.output


@pytest.mark.parametrize("which", ["private-for-public", "not-pem", "missing"])
def test_a_key_validate_cannot_use_is_a_usage_error(signed, signing_keys, tmp_path, which):
    key = {"private-for-public": signing_keys[0], "not-pem": signed, "missing": tmp_path / "nope.pem"}[which]
    result = _validate(signed, key)
    assert result.exit_code == 2, result.output
    errors = _error_lines(result)
    assert len(errors) == 1 and errors[0].startswith("error: --verify") and "Traceback" not in result.output


@pytest.mark.parametrize("which", ["public-for-private", "missing"])
def test_export_with_a_key_it_cannot_use_writes_nothing(digits_ticket, signing_keys, tmp_path, which):
    key = {"public-for-private": signing_keys[1], "missing": tmp_path / "nope.pem"}[which]
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", str(digits_ticket), "--out", str(out), "--sign", str(key)])
    assert result.exit_code == 2, result.output
    assert "--sign" in result.stderr and "Traceback" not in result.output
    assert not out.exists() and not signature_path(out).exists()


def test_export_refuses_to_replace_a_signature_without_force(digits_ticket, signing_keys, tmp_path):
    out = tmp_path / "m.onnx"
    signature_path(out).write_text("an earlier signature\n")
    result = runner.invoke(app, ["export", str(digits_ticket), "--out", str(out), "--sign", str(signing_keys[0])])
    assert result.exit_code == 2 and "already exists" in result.stderr and not out.exists()


@pytest.mark.parametrize("module", ["OpenSSL", "model_signing"])
def test_without_the_sign_extra_the_message_names_it(signed, signing_keys, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    result = _validate(signed, signing_keys[1])
    assert result.exit_code == 2
    errors = _error_lines(result)
    assert len(errors) == 1 and "pip install 'ticketpack[sign]'" in errors[0] and module in errors[0]
