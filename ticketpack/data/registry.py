"""Datasets by name (``digits``) or by path (a directory of ``<domain>.jsonl``/``.csv`` files)."""

from __future__ import annotations

from pathlib import Path

from ticketpack.data.base import Dataset
from ticketpack.data.digits import DigitsDataset
from ticketpack.data.text import TextDirDataset
from ticketpack.errors import TicketpackError
from ticketpack.registry import Registry

DATASETS: Registry[type] = Registry("dataset")
DATASETS.register("digits", DigitsDataset, doc="scikit-learn's bundled 8x8 handwritten digits (1,797 images, no "
                  "download) under covariate shifts: clean, rot<deg>, invert, blur, noise.")


def get(name_or_path: str | Path, **options) -> Dataset:
    """``get("digits")`` or ``get("../shared/data/mdsd")`` (``ticketpack.create_dataset``): a registered name, or
    a directory of ``<domain>.jsonl``/``.csv`` files."""
    name = str(name_or_path)
    if name in DATASETS:
        return DATASETS.create(name, **options)
    if Path(name).is_dir():
        return TextDirDataset(Path(name), **options)
    raise TicketpackError(
        f"unknown dataset {name!r}; known: {', '.join(DATASETS.list())}, or a directory of <domain>.jsonl/.csv files"
    )
