"""A dataset directory given by path: one entry per domain, each in any of the formats below.

- ``<domain>/<class>/<image>`` (torchvision's ImageFolder layout), or ``<domain>/{train,val,test}/<class>/<image>``
  with the user's own splits: images, decoded when a batch needs them;
- ``<domain>.npz``: arrays ``x`` and ``y`` (or ``x_train``/``y_train``, ``x_val``/``y_val``, ``x_test``/``y_test``):
  images when ``x`` is (N, H, W) or (N, H, W, C), a table when it is (N, features);
- ``<domain>.parquet`` or ``<domain>.csv`` of numeric feature columns and a ``label`` column: a table;
- ``<domain>.jsonl`` (``{"text", "label"}`` per line) or ``<domain>.csv`` with ``text`` and ``label`` columns: text.

Each format is a :class:`DomainFormat` in :data:`FORMATS`; a new one is a class and a line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ticketpack.core.errors import TicketpackError
from ticketpack.data.arrays import labelled_arrays, load_npz, numeric_column, read_table
from ticketpack.data.base import DomainData, SplitConfig
from ticketpack.data.domain import DomainSource, assemble
from ticketpack.data.files import csv_header
from ticketpack.data.images import channels_of, headers, is_image_file
from ticketpack.data.kinds import ImagePreprocessing, InputKind, TabularPreprocessing
from ticketpack.data.rows import ArrayRows, ImageFiles
from ticketpack.data.text import read_text_domain

SPLITS = ("train", "val", "test")


class DomainFormat:
    """One way a domain is stored in a dataset directory."""

    def domain_of(self, path: Path) -> str | None:
        """The domain ``path`` holds in this format, or None."""
        raise NotImplementedError

    def read(self, path: Path, where: str) -> DomainSource:
        raise NotImplementedError


class ImageFolder(DomainFormat):
    def domain_of(self, path: Path) -> str | None:
        return path.name if path.is_dir() and not path.name.startswith(".") else None

    def read(self, path: Path, where: str) -> DomainSource:
        subdirs = {p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")}
        if subdirs & set(SPLITS):
            missing = [s for s in SPLITS if s not in subdirs]
            if missing:
                raise TicketpackError(f"{path}: given splits need train, val and test folders; missing {', '.join(missing)}")
            found = {s: _class_files(path / s, f"{where}/{s}") for s in SPLITS}
        else:
            found = {"all": _class_files(path, where)}
        files = [f for pairs in found.values() for f, _ in pairs]
        sizes: dict[tuple[int, int], Path] = {}
        modes = set()
        for f, (h, w, mode) in zip(files, headers(files)):
            sizes.setdefault((h, w), f)
            modes.add(mode)
        channels = 1 if all(channels_of(m) == 1 for m in modes) else 3
        parts = {s: (ImageFiles([f for f, _ in pairs], channels), [c for _, c in pairs]) for s, pairs in found.items()}

        def check(options: dict[str, Any]) -> None:
            if len(sizes) > 1 and options.get("resize") is None:
                (a, fa), (b, fb) = list(sizes.items())[:2]
                raise TicketpackError(
                    f"{where}: images of different sizes ({fa.name}: {a[0]}x{a[1]}, {fb.name}: {b[0]}x{b[1]}); set the "
                    'preprocessing\'s resize (e.g. {"resize": [64, 64]}) to bring them to one size')

        info = {"rows": len(files), "image_sizes": len(sizes)}
        options = {"channels": channels, "pixel_min": 0.0, "pixel_max": 255.0}
        if "all" in parts:
            rows, labels = parts["all"]
            return DomainSource(where, ImagePreprocessing, rows, labels, options=options, check=check, info=info)
        return DomainSource(where, ImagePreprocessing, given=parts, options=options, check=check, info=info)


def _class_files(root: Path, where: str) -> list[tuple[Path, str]]:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        loose = any(is_image_file(p) for p in root.iterdir())
        raise TicketpackError(f"{where}: no class folders in {root}" + (
            " (its images must sit in one folder per class: <domain>/<class>/<image>)" if loose else " and no images"))
    out = []
    for c in classes:
        files = sorted(f for f in c.iterdir() if f.is_file() and is_image_file(f))
        if not files:
            raise TicketpackError(f"{where}: class folder {c.name!r} has no images ({c})")
        out += [(f, c.name) for f in files]
    return out


class NpzArrays(DomainFormat):
    def domain_of(self, path: Path) -> str | None:
        return path.stem if path.is_file() and path.suffix.lower() == ".npz" else None

    def read(self, path: Path, where: str) -> DomainSource:
        arrays = load_npz(path)
        if "x" in arrays:
            x, labels = _xy(arrays, "x", "y", path)
            kind, options = _array_kind(x, path)
            return DomainSource(where, kind, ArrayRows(x), labels, options=options, info={"rows": len(x)})
        if all(f"x_{s}" in arrays for s in SPLITS):
            given = {s: _xy(arrays, f"x_{s}", f"y_{s}", path) for s in SPLITS}
            kind, options = _array_kind(given["train"][0], path)
            return DomainSource(where, kind, given={s: (ArrayRows(x), y) for s, (x, y) in given.items()},
                                options=options, info={"rows": sum(len(x) for x, _ in given.values())})
        raise TicketpackError(f"{path} needs arrays 'x' and 'y' (or x_train, y_train, x_val, y_val, x_test, y_test); "
                              f"it has: {', '.join(sorted(arrays)) or 'none'}")


def _xy(arrays: dict[str, np.ndarray], xk: str, yk: str, path: Path) -> tuple[np.ndarray, list]:
    x, y = labelled_arrays(arrays, xk, yk, path)
    return x, y.tolist()


def _array_kind(x: np.ndarray, path: Path) -> tuple[type[InputKind], dict]:
    if x.ndim == 2:
        return TabularPreprocessing, {"columns": [f"x{i}" for i in range(x.shape[1])]}
    if x.ndim in (3, 4):
        return ImagePreprocessing, ({"channels": 1} if x.ndim == 3 else {})
    raise TicketpackError(f"{path}: 'x' has shape {x.shape}; expected (N, features), (N, H, W) or (N, H, W, C)")


class Table(DomainFormat):
    def domain_of(self, path: Path) -> str | None:
        if not path.is_file():
            return None
        if path.suffix.lower() == ".parquet":
            return path.stem
        if path.suffix.lower() == ".csv" and "text" not in csv_header(path):
            return path.stem
        return None

    def read(self, path: Path, where: str) -> DomainSource:
        table = read_table(path)
        if "label" not in table:
            raise TicketpackError(f"{path} has no 'label' column (columns: {', '.join(table) or 'none'})")
        columns = [c for c in table if c != "label"]
        if not columns:
            raise TicketpackError(f"{path} has no feature columns besides 'label'")
        x = np.stack([numeric_column(c, table[c], path) for c in columns], axis=1)
        labels = [v.strip() if isinstance(v, str) else v for v in table["label"]]
        if any(v is None or v == "" for v in labels):
            raise TicketpackError(f"{path}: a row has an empty 'label'")
        return DomainSource(where, TabularPreprocessing, ArrayRows(x), labels, options={"columns": columns},
                            info={"rows": len(x)})


class TextFile(DomainFormat):
    def domain_of(self, path: Path) -> str | None:
        if not path.is_file():
            return None
        if path.suffix.lower() == ".jsonl":
            return path.stem
        if path.suffix.lower() == ".csv" and "text" in csv_header(path):
            return path.stem
        return None

    def read(self, path: Path, where: str) -> DomainSource:
        return read_text_domain(path, where)


FORMATS: list[DomainFormat] = [ImageFolder(), NpzArrays(), Table(), TextFile()]


class DirDataset:
    """A dataset directory given by path; each domain is an entry in it (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.name = str(self.root)
        if not self.root.is_dir():
            raise TicketpackError(f"dataset directory not found: {self.root}")

    def entries(self) -> dict[str, tuple[DomainFormat, Path]]:
        found: dict[str, tuple[DomainFormat, Path]] = {}
        for path in sorted(self.root.iterdir()):
            for fmt in FORMATS:
                domain = fmt.domain_of(path)
                if domain is None:
                    continue
                if domain in found:
                    raise TicketpackError(f"domain {domain!r} is ambiguous in {self.root}: both {found[domain][1].name} "
                                          f"and {path.name} exist")
                found[domain] = (fmt, path)
                break
        return found

    def domains(self) -> list[str]:
        return sorted(self.entries())

    def check_domain(self, domain: str) -> None:
        self.entry(domain)

    def entry(self, domain: str) -> tuple[DomainFormat, Path]:
        entries = self.entries()
        if domain not in entries:
            raise TicketpackError(
                f"unknown domain {domain!r} in {self.root}; known: {', '.join(sorted(entries)) or '(none)'}"
            )
        return entries[domain]

    def load(self, domain: str, seed: int, split: SplitConfig, preprocessing: InputKind | None = None,
             label_names: list[str] | None = None, labels_of: str = "the label set",
             options: dict[str, Any] | None = None) -> DomainData:
        fmt, path = self.entry(domain)
        source = fmt.read(path, f"{self.name}/{domain}")
        return assemble(source, self.name, domain, seed, split, preprocessing, label_names, labels_of, options)
