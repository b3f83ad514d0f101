"""Shared fixtures: tiny configs that train in seconds, and paths to data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

try:  # the runtime-only install (no torch) runs tests/test_runtime_only.py, which needs none of these fixtures
    from ticketpack.search import SearchConfig, search
except ModuleNotFoundError:
    SearchConfig = search = None



@pytest.fixture(autouse=True)
def _quick_speed_check(monkeypatch):
    """Every export times its file against dense for about a second (ticketpack.export.speed); tests check what
    the timing says, not how long it runs, so a twentieth of that budget keeps ~90 exports from adding minutes."""
    try:
        from ticketpack.export import speed
    except ModuleNotFoundError:  # the runtime-only install
        return
    monkeypatch.setattr(speed, "BUDGET_S", 0.05)


FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def tiny_config(**overrides) -> SearchConfig:
    """lenet-300-100 on digits, 3 epochs per round, 2 rounds: a ticket in a few seconds."""
    base = {"train": {"epochs": 3}, "prune": {"rounds": 2}, "threads": 1}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return SearchConfig.model_validate(base)


@pytest.fixture(scope="session")
def digits_ticket(tmp_path_factory) -> Path:
    """A small finished ticket on digits/clean (rounds 0-3), shared by tests that only read it."""
    out = tmp_path_factory.mktemp("tickets") / "digits"
    search(tiny_config(prune={"rounds": 3, "rate": 0.5}), out)
    return out


def text_config(**prune) -> SearchConfig:
    """`bow` on the hand-written review fixture (books domain), 2 rounds at 50%: a ticket in a second or two."""
    return SearchConfig.model_validate(
        {
            "dataset": str(FIXTURES / "reviews"),
            "source": "books",
            "model": {"name": "bow", "options": {"embed_dim": 16, "hidden": 16}},
            "text": {"num_buckets": 512, "max_tokens": 32},
            "train": {"epochs": 5, "batch_size": 16, "lr": 0.01},
            "prune": {"rounds": 2, "rate": 0.5, **prune},
            "threads": 1,
        }
    )


@pytest.fixture(scope="session")
def text_ticket(tmp_path_factory) -> Path:
    """A small `bow` ticket on the review fixture (layerwise magnitude, the text models' default)."""
    out = tmp_path_factory.mktemp("tickets") / "text"
    search(text_config(), out)
    return out


@pytest.fixture(scope="session")
def exported_digits(digits_ticket, tmp_path_factory) -> Path:
    """`compact` ONNX export of `digits_ticket` at its last round (lenet-300-100, ~12% weights), card embedded."""
    from ticketpack.export.exporter import export_model

    out = tmp_path_factory.mktemp("exported") / "digits-compact.onnx"
    export_model(digits_ticket, out, level=3, format="compact", threads=1)
    return out


@pytest.fixture(scope="session")
def exported_text(text_ticket, tmp_path_factory) -> Path:
    """`compact` ONNX export of `text_ticket` at its last round (bow on the review fixture), card embedded."""
    from ticketpack.export.exporter import export_model

    out = tmp_path_factory.mktemp("exported") / "text-compact.onnx"
    export_model(text_ticket, out, level=2, format="compact", threads=1)
    return out


def copy_with_schema_version(src: Path, dst: Path, file: str, version: int) -> Path:
    """A copy of the directory ``src`` whose JSON ``file`` claims another ``schema_version``."""
    shutil.copytree(src, dst)
    doc = json.loads((dst / file).read_text())
    doc["schema_version"] = version
    (dst / file).write_text(json.dumps(doc))
    return dst


def copy_with_flipped_byte(src: Path, dst: Path, file: str, xor: int = 1) -> Path:
    """A copy of the directory ``src`` whose ``file`` has its last byte changed."""
    shutil.copytree(src, dst)
    data = bytearray((dst / file).read_bytes())
    data[-1] ^= xor
    (dst / file).write_bytes(bytes(data))
    return dst


def forge_card(src: Path, dst: Path, edit) -> Path:
    """A copy of the exported model ``src`` at ``dst`` whose embedded card JSON ``edit`` changed in place (the weights
    untouched, so the weights digest still matches): a card edited after export."""
    import onnx

    from ticketpack.runtime.card import CARD_KEY

    model = onnx.load(str(src))
    for prop in model.metadata_props:
        if prop.key == CARD_KEY:
            card = json.loads(prop.value)
            edit(card)
            prop.value = json.dumps(card)
    onnx.save(model, str(dst))
    return dst


def inflate_totals(card: dict) -> None:
    """A consistent lie about a card's unpruned size: every layer's total 100× its nonzero count (1% remaining)."""
    sp = card["sparsity"]
    for layer in sp["layers"]:
        layer["total"] = layer["nonzero"] * 100
        layer["weights_remaining"] = layer["nonzero"] / layer["total"]
    sp["total"] = sum(layer["total"] for layer in sp["layers"])
    sp["weights_remaining"] = sp["nonzero"] / sp["total"]


def shared_data_or_skip() -> Path:
    mdsd = SHARED_DATA / "mdsd"
    if not (mdsd / "books.jsonl").exists():
        pytest.skip(f"shared review data not found at {mdsd} (it lives beside the repository as ../shared)")
    return mdsd


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory) -> tuple[Path, Path]:
    """A fresh P-256 key pair as PEM files: (private key, public key), made with `cryptography` (the sign extra)."""
    pytest.importorskip("model_signing", reason="needs the sign extra: pip install 'ticketpack[sign]'")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    where = tmp_path_factory.mktemp("keys")
    private, public = where / "signing-key.pem", where / "signing-key.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public
