"""Sign an exported file and verify it, with OpenSSF's ``model-signing`` (the `sign` extra; torch-free).

What a file can prove about itself, `validate` recomputes (weights digest, sparsity, label count, bounds). What it
cannot — that the labels, the preprocessing, the accuracies and the provenance in its card are the ones `export`
wrote — a signature covers: ``ticketpack export --sign KEY`` signs the whole file (card included) with an
elliptic-curve private key (PEM; P-256, P-384 or P-521) and writes the signature beside it as ``<model>.sig``
(a Sigstore bundle holding a DSSE envelope over the file's sha256; no network, no transparency log);
``ticketpack validate --verify PUB`` and ``ticketpack serve --verify PUB`` refuse a file whose bytes changed
after signing, or a signature made with another key.

    openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out signing-key.pem
    openssl ec -in signing-key.pem -pubout -out signing-key.pub.pem
"""

from __future__ import annotations

import os
from pathlib import Path

from ticketpack.core.errors import FieldError, TicketpackError, field

SIGN_EXTRA_HINT = "pip install 'ticketpack[sign]'"
SIGNATURE_SUFFIX = ".sig"
_EXTRA_MODULES = {"model_signing", "OpenSSL", "cryptography", "sigstore", "sigstore_models", "in_toto_attestation",
                  "blake3", "asn1crypto", "rfc8785", "tuf", "securesystemslib"}


def signature_path(model: Path | str) -> Path:
    """Where the signature of ``model`` lives: beside it, ``<model>.sig``."""
    model = Path(model)
    return model.with_name(model.name + SIGNATURE_SUFFIX)


def _library(name: str):
    """``(model_signing.signing, model_signing.verifying)``, or a one-line error naming the extra."""
    try:
        import OpenSSL  # noqa: F401  model_signing imports it without declaring it
        from model_signing import signing, verifying
    except ImportError as exc:
        missing = (getattr(exc, "name", None) or "model_signing").split(".")[0]
        if missing not in _EXTRA_MODULES:
            raise
        raise FieldError(f"{field(name)} needs the sign extra ({missing} is not installed): {SIGN_EXTRA_HINT}") from None
    return signing, verifying


# what cryptography raises for a key file it cannot use (UnsupportedAlgorithm is a plain Exception; an RSA key
# has no .curve: AttributeError)
def _key_errors() -> tuple[type[BaseException], ...]:
    try:
        from cryptography.exceptions import UnsupportedAlgorithm
    except ImportError:
        return (ValueError, TypeError, AttributeError)
    return (ValueError, TypeError, AttributeError, UnsupportedAlgorithm)


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def _key_file(key: Path | str, name: str) -> Path:
    key = Path(key)
    if not key.exists():
        raise FieldError(f"{field(name)} {key}: no such key file")
    if not key.is_file():
        raise FieldError(f"{field(name)} {key} is not a file")
    if not os.access(key, os.R_OK):
        raise FieldError(f"{field(name)} {key}: no permission to read it")
    return key


def signer(private_key: Path | str, name: str = "sign"):
    """A ``model_signing`` signing config for an elliptic-curve private key (PEM, unencrypted), checked now: a
    missing library, a missing file or a key of another kind is a one-line error before any work starts."""
    signing, _ = _library(name)
    key = _key_file(private_key, name)
    try:
        return signing.Config().use_elliptic_key_signer(private_key=key)
    except _key_errors() as exc:  # not PEM, encrypted, not a private key, not an elliptic curve, another curve
        raise FieldError(
            f"{field(name)} {key}: not an unencrypted elliptic-curve private key in PEM (P-256, P-384 or P-521): "
            f"{_first_line(exc)}"
        ) from None


def verifier(public_key: Path | str, name: str = "verify"):
    """A ``model_signing`` verifying config for an elliptic-curve public key (PEM), checked now (like :func:`signer`)."""
    _, verifying = _library(name)
    key = _key_file(public_key, name)
    try:
        config = verifying.Config().use_elliptic_key_verifier(public_key=key)
    except _key_errors() as exc:
        raise FieldError(
            f"{field(name)} {key}: not an elliptic-curve public key in PEM (P-256, P-384 or P-521): {_first_line(exc)}"
        ) from None
    return config


def sign_file(model: Path | str, config, signature: Path | str | None = None) -> Path:
    """Sign ``model`` with a :func:`signer` config; write the signature atomically (``<model>.sig`` by default)."""
    from ticketpack.core.fileio import atomic_path

    model = Path(model)
    out = Path(signature) if signature is not None else signature_path(model)
    try:
        with atomic_path(out) as tmp:
            config.sign(model, tmp)
    except OSError as exc:
        raise TicketpackError(f"cannot write the signature {out}: {exc.strerror or exc}") from None
    return out


def verify_file(model: Path | str, config, signature: Path | str | None = None) -> str:
    """Check ``model`` against its signature with a :func:`verifier` config; return a one-line summary, or raise a
    :class:`TicketpackError` saying why it does not verify (no signature, another key, changed bytes)."""
    model = Path(model)
    sig = Path(signature) if signature is not None else signature_path(model)
    if not sig.is_file():
        raise TicketpackError(f"no signature at {sig}: sign the file at export (`ticketpack export --sign KEY`)")
    try:
        config.verify(model, sig)
    except ValueError as exc:
        text = str(exc)
        if text.startswith("Signature mismatch"):
            raise TicketpackError(f"the file changed after it was signed: its sha256 does not match {sig}") from None
        if text.startswith("Key mismatch"):
            raise TicketpackError(f"{sig} was signed with another key than the one given") from None
        raise TicketpackError(f"{sig} does not verify: {_first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001  a damaged signature file: JSON, base64, protobuf errors of every type
        raise TicketpackError(f"{sig} is not a readable model-signing signature ({type(exc).__name__}: "
                              f"{_first_line(exc, 100)})") from None
    return f"{sig.name} verifies with the given key: the file is byte for byte the one signed"
