"""Raw inputs from files, for `predict` (unlabelled) and `evaluate --data-file` (labelled). Torch-free.

Text models: ``.jsonl`` (``{"text": ...}`` objects or bare JSON strings), ``.csv`` (a ``text`` column) or
``.txt`` (one text per line). Image models: ``.npy`` (an array), ``.jsonl`` (``{"image": [[...]]}`` objects or bare
arrays) or ``.csv`` (numeric pixel columns). A ``label`` field/column is read where labels are needed and ignored
otherwise. Shapes and values are checked by the card's preprocessing.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ticketpack.errors import TicketpackError

TEXT_SUFFIXES = (".jsonl", ".csv", ".txt")
IMAGE_SUFFIXES = (".npy", ".jsonl", ".csv")
_IMAGE_KEYS = ("image", "input", "pixels")


def _open_text(path: Path):
    if not path.exists():
        raise TicketpackError(f"input file not found: {path}")
    if not path.is_file():
        raise TicketpackError(f"{path} is not a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TicketpackError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise TicketpackError(f"cannot read {path}: {exc.strerror}") from None


def _jsonl(path: Path) -> list[tuple[int, object]]:
    rows = []
    for lineno, line in enumerate(_open_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise TicketpackError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return rows


def _csv(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    import io

    reader = csv.DictReader(io.StringIO(_open_text(path), newline=""))
    if not reader.fieldnames:
        raise TicketpackError(f"{path} has no rows")
    return list(reader.fieldnames), [(reader.line_num, rec) for rec in reader]


def _label(value: object, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise TicketpackError(f"{where}: 'label' must be an integer or a non-empty string")
    return str(value)


def read_file(path: Path | str, kind: str, labelled: bool = False) -> tuple[list | np.ndarray, list[str] | None]:
    """Raw inputs (a list of strings, or an array of pixel rows) and, if ``labelled``, label names as strings."""
    path = Path(path)
    suffixes = TEXT_SUFFIXES if kind == "text" else IMAGE_SUFFIXES
    if path.suffix not in suffixes or (labelled and path.suffix in (".txt", ".npy")):
        usable = [s for s in suffixes if not (labelled and s in (".txt", ".npy"))]
        raise TicketpackError(
            f"{path}: {'an' if kind == 'image' else 'a'} {kind} model {'is evaluated on' if labelled else 'reads'} {', '.join(usable)} files"
            + (" (with a 'label' field)" if labelled else "")
        )
    inputs: list = []
    labels: list[str] = []
    if path.suffix == ".npy":
        if not path.is_file():
            raise TicketpackError(f"input file not found: {path}")
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise TicketpackError(f"{path} is not a readable .npy array ({str(exc).splitlines()[0][:120]})") from None
        if arr.ndim == 0 or len(arr) == 0:
            raise TicketpackError(f"{path} has no rows")
        if not np.issubdtype(arr.dtype, np.number):
            raise TicketpackError(f"{path} holds {arr.dtype} values; an image model needs numbers")
        return arr, None
    if path.suffix == ".txt":
        inputs = [line for line in _open_text(path).splitlines() if line.strip()]
    elif path.suffix == ".jsonl":
        for lineno, obj in _jsonl(path):
            where = f"{path}:{lineno}"
            if kind == "text":
                if isinstance(obj, dict) and "text" in obj:
                    value = obj["text"]
                elif isinstance(obj, str) and not labelled:
                    value = obj
                else:
                    raise TicketpackError(f"{where}: expected an object with 'text'" + (" and 'label'" if labelled else " or a JSON string"))
                if not isinstance(value, str):
                    raise TicketpackError(f"{where}: 'text' must be a string, got {type(value).__name__}")
            else:
                key = next((k for k in _IMAGE_KEYS if isinstance(obj, dict) and k in obj), None)
                if key is not None:
                    value = obj[key]
                elif isinstance(obj, list) and not labelled:
                    value = obj
                else:
                    raise TicketpackError(f"{where}: expected an object with 'image' (nested lists of pixel values)"
                                          + (" and 'label'" if labelled else " or a bare array"))
            if labelled:
                if not isinstance(obj, dict) or "label" not in obj:
                    raise TicketpackError(f"{where}: no 'label' field")
                labels.append(_label(obj["label"], where))
            inputs.append(value)
    else:  # .csv
        fields, records = _csv(path)
        if labelled and "label" not in fields:
            raise TicketpackError(f"{path}: CSV needs a 'label' column")
        if kind == "text" and "text" not in fields:
            raise TicketpackError(f"{path}: CSV needs a 'text' column")
        pixel_cols = [f for f in fields if f != "label"]
        for lineno, rec in records:
            where = f"{path}:{lineno}"
            if kind == "text":
                inputs.append(rec["text"] or "")
            else:
                try:
                    inputs.append([float(rec[c]) for c in pixel_cols])
                except (TypeError, ValueError):
                    raise TicketpackError(f"{where}: pixel columns must be numbers") from None
            if labelled:
                labels.append(_label((rec.get("label") or "").strip(), where))
    if not inputs:
        raise TicketpackError(f"{path} has no rows")
    if kind == "image":
        try:
            arr = np.asarray(inputs, dtype=np.float64)  # float32 happens in preprocessing, after range checks
        except (TypeError, ValueError):
            raise TicketpackError(f"{path}: image rows must all have the same shape and hold numbers") from None
        return arr, (labels if labelled else None)
    return inputs, (labels if labelled else None)
