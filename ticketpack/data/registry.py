"""Datasets by name (``digits``), by directory (one entry per domain: ``ticketpack.data.directory``) or by factory
(``file.py:factory``: ``ticketpack.data.factory``)."""

from __future__ import annotations

from pathlib import Path

from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.core.references import is_reference
from ticketpack.core.registry import Registry
from ticketpack.data.base import Dataset
from ticketpack.data.digits import DigitsDataset

DATASETS: Registry[type] = Registry("dataset")
DATASETS.register("digits", DigitsDataset, doc="scikit-learn's bundled 8x8 handwritten digits (1,797 images, no "
                  "download) under covariate shifts: clean, rot<deg>, invert, blur, noise.")


def get(name_or_path: str | Path, **options) -> Dataset:
    """``get("digits")``, ``get("../shared/data/mdsd")`` or ``get("my_data.py:domains")``
    (``ticketpack.create_dataset``)."""
    name = str(name_or_path)
    if name in DATASETS:
        return DATASETS.create(name, **options)
    path = Path(name).expanduser()
    if path.is_dir():
        from ticketpack.data.directory import DirDataset

        return DirDataset(path, **options)
    if is_reference(name) and not path.exists():
        from ticketpack.data.factory import FactoryDataset

        return FactoryDataset(name)
    if path.exists():
        raise FieldError(f"dataset {name!r} is a file; `dataset` takes a directory with one entry per domain "
                              "(e.g. <domain>.jsonl, <domain>.npz, <domain>/<class>/<image>) or file.py:factory")
    if "/" in name or "\\" in name or name.startswith("."):
        raise TicketpackError(f"dataset path {name!r} does not exist")
    raise TicketpackError(
        f"unknown dataset {name!r}; known: {', '.join(DATASETS.list())}, a directory with one entry per domain, or "
        "path/to/file.py:factory"
    )
