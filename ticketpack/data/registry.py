"""Datasets by name (``digits``) or by path (a directory of ``<domain>.jsonl``/``.csv`` files)."""

from __future__ import annotations

from pathlib import Path

from ticketpack.data.base import Dataset
from ticketpack.data.digits import DigitsDataset
from ticketpack.data.text import TextDirDataset
from ticketpack.errors import TicketpackError
from ticketpack.registry import Registry

DATASETS: Registry[type] = Registry("dataset")
DATASETS.register("digits", DigitsDataset)


def get(name_or_path: str | Path) -> Dataset:
    """``get("digits")`` or ``get("../shared/data/mdsd")``."""
    name = str(name_or_path)
    if name in DATASETS:
        return DATASETS.get(name)()
    if Path(name).is_dir():
        return TextDirDataset(Path(name))
    raise TicketpackError(
        f"unknown dataset {name!r}; known: {', '.join(DATASETS.names())}, or a directory of <domain>.jsonl/.csv files"
    )


def names() -> list[str]:
    return DATASETS.names()
