"""Array files users bring: ``.npz`` (never unpickled) and tables (``.csv``, ``.parquet``) of numeric columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ticketpack.core.errors import TicketpackError
from ticketpack.data.files import csv_rows


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read without pickle (an object array is refused)."""
    if not Path(path).is_file():
        raise TicketpackError(f"input file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise TicketpackError(f"{path} holds object arrays, which are read only through pickle; store numbers "
                                  "or fixed-width strings") from None
        raise TicketpackError(f"{path} is not a readable .npz file ({str(exc).splitlines()[0][:120]})") from None
    except (OSError, EOFError) as exc:
        raise TicketpackError(f"{path} is not a readable .npz file ({str(exc).splitlines()[0][:120] or 'truncated'})") from None


def load_npy(path: Path) -> np.ndarray:
    """A ``.npy`` array of numbers, read without pickle."""
    if not Path(path).is_file():
        raise TicketpackError(f"input file not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise TicketpackError(f"{path} is not a readable .npy array ({str(exc).splitlines()[0][:120]})") from None
    if arr.ndim == 0 or len(arr) == 0:
        raise TicketpackError(f"{path} has no rows")
    if not np.issubdtype(arr.dtype, np.number):
        raise TicketpackError(f"{path} holds {arr.dtype} values; the model needs numbers")
    return arr


def labelled_arrays(arrays: dict[str, np.ndarray], xk: str, yk: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``xk`` (rows of numbers) and ``yk`` (one label per row) of an ``.npz`` file, checked to fit together."""
    if xk not in arrays:
        raise TicketpackError(f"{path} has no array {xk!r} (it has: {', '.join(sorted(arrays)) or 'none'})")
    if yk not in arrays:
        raise TicketpackError(f"{path} has {xk!r} but no {yk!r} of labels")
    x, y = arrays[xk], arrays[yk]
    if y.ndim != 1:
        raise TicketpackError(f"{path}: {yk!r} must be one label per row; it has shape {y.shape}")
    if len(x) != len(y):
        raise TicketpackError(f"{path}: {xk!r} has {len(x)} rows but {yk!r} has {len(y)}")
    if not np.issubdtype(x.dtype, np.number):
        raise TicketpackError(f"{path}: {xk!r} holds {x.dtype} values; it must hold numbers")
    return x, y


def read_table(path: Path) -> dict[str, list]:
    """Columns of a ``.csv`` or ``.parquet`` file by name, in file order (values as read: strings for CSV)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise TicketpackError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from None
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow's own error types
            raise TicketpackError(f"{path} is not a readable Parquet file ({str(exc).splitlines()[0][:120]})") from None
        return {name: table.column(name).to_pylist() for name in table.column_names}
    fields, records = csv_rows(path)
    return {f: [rec.get(f) for _, rec in records] for f in fields}


def numeric_column(name: str, values: list, where: Path) -> np.ndarray:
    """A column as float64, or an error that names the column and its first value that is not a number."""
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        try:
            if isinstance(v, bool) or v is None or (isinstance(v, str) and not v.strip()):
                raise ValueError
            out[i] = float(v)
        except (TypeError, ValueError):
            raise TicketpackError(
                f"{where}: column {name!r} is not numeric (row {i + 1}: {v!r}); feature columns must hold numbers"
            ) from None
    return out
