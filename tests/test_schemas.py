"""The committed JSON Schemas in schemas/ match the pydantic models of the files ticketpack writes."""

from pathlib import Path

import pytest

from ticketpack.schemas import FILE_MODELS, schema_text

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


@pytest.mark.parametrize("stem", sorted(FILE_MODELS))
def test_committed_schema_matches_its_model(stem):
    path = SCHEMAS / f"{stem}.schema.json"
    assert path.exists(), f"missing {path}: run `python -m ticketpack.schemas`"
    assert path.read_text() == schema_text(stem), f"{path} is stale: run `python -m ticketpack.schemas`"


def test_no_stray_schema_files():
    stems = {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")}
    assert stems == set(FILE_MODELS)
