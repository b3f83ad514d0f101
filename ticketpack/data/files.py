"""Reading users' raw input files (JSONL, CSV, text), naming the file and line of anything wrong. Torch-free."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ticketpack.core.errors import TicketpackError


def read_text(path: Path) -> str:
    """The file's UTF-8 text (a byte-order mark dropped)."""
    path = Path(path)
    if not path.exists():
        raise TicketpackError(f"input file not found: {path}")
    if not path.is_file():
        raise TicketpackError(f"{path} is not a file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise TicketpackError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise TicketpackError(f"cannot read {path}: {exc.strerror}") from None


def jsonl_rows(path: Path) -> list[tuple[int, object]]:
    """(line number, decoded JSON value) of each non-blank line."""
    rows = []
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise TicketpackError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return rows


def csv_rows(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """The header's column names and (line number, record) of each row."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    if not reader.fieldnames:
        raise TicketpackError(f"{path} has no rows")
    return [f.strip() for f in reader.fieldnames], [
        (reader.line_num, {k.strip() if isinstance(k, str) else k: v for k, v in rec.items()}) for rec in reader
    ]


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file's header, reading only its first line."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return [f.strip() for f in next(csv.reader(fh), [])]
    except UnicodeDecodeError:
        raise TicketpackError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise TicketpackError(f"cannot read {path}: {exc.strerror}") from None


def label_text(value: object, where: str) -> str:
    """A label as its name: an integer or a non-empty string."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise TicketpackError(f"{where}: 'label' must be an integer or a non-empty string")
    return str(value).strip() if isinstance(value, str) else str(value)
