"""Labelled text in a directory: one ``<domain>.jsonl`` (``{"text": str, "label": int|str}`` per line) or
``<domain>.csv`` (columns ``text,label``) per domain, the layout of ``../shared/data/mdsd/``.

Exact duplicate rows are dropped before splitting (the review data repeats some reviews, which would
otherwise leak between train and test). Labels may be ints or strings; the label set is sorted and recorded.

No document is cut silently: when a document has more ids (n-grams included) than ``max_tokens``, loading records
the count in ``DomainData.info["truncated"]`` and warns with a :class:`TruncationWarning` that says how many.

Where a :class:`~ticketpack.data.domain.FeatureCache` is in use (a transfer worker's, an executor's), a domain file
featurized before (keyed by the file's sha256 and the featurization, up to 1 GiB of ids) is only split again.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ticketpack.core.errors import TicketpackError
from ticketpack.core.fileio import sha256_file
from ticketpack.data.domain import DomainSource
from ticketpack.data.kinds import TextPreprocessing
from ticketpack.data.rows import ArrayRows

SUFFIXES = (".jsonl", ".csv")


from ticketpack.data.kinds.text import TruncationWarning  # noqa: E402,F401  (its home)


def collision_stats(preprocessing: TextPreprocessing, texts: list[str] | np.ndarray) -> dict:
    """How often distinct tokens (words and n-grams) of ``texts`` share a hashed id.

    ``distinct_tokens``: distinct tokens; ``shared_id_tokens``: the share of them whose id some other distinct token
    also has; ``shared_id_occurrences``: the same share over token occurrences; ``ids_lost``: the share of distinct
    tokens that get no id of their own (1 - distinct ids / distinct tokens)."""
    counts: dict[str, int] = {}
    for text in texts:
        for token in preprocessing.tokens(text):
            counts[token] = counts.get(token, 0) + 1
    if not counts:
        return {"distinct_tokens": 0, "distinct_ids": 0, "shared_id_tokens": 0.0, "shared_id_occurrences": 0.0,
                "ids_lost": 0.0}
    ids = preprocessing.token_ids(list(counts))
    occurrences = np.array(list(counts.values()), dtype=np.int64)
    _, inverse, per_id = np.unique(ids, return_inverse=True, return_counts=True)
    shared = per_id[inverse] > 1
    return {
        "distinct_tokens": len(ids),
        "distinct_ids": len(per_id),
        "shared_id_tokens": float(shared.mean()),
        "shared_id_occurrences": float(occurrences[shared].sum() / occurrences.sum()),
        "ids_lost": float(1 - len(per_id) / len(ids)),
    }


def _check_row(text: object, label: object, where: str) -> tuple[str, int | str]:
    if not isinstance(text, str) or not text.strip():
        raise TicketpackError(f"{where}: 'text' must be a non-empty string")
    if isinstance(label, bool) or not isinstance(label, (int, str)) or label == "":
        raise TicketpackError(f"{where}: 'label' must be an integer or a non-empty string")
    return text, label


def read_rows(path: Path) -> list[tuple[str, int | str]]:
    """Read (text, label) rows from a JSONL or CSV file, naming the line of any malformed row."""
    rows: list[tuple[str, int | str]] = []
    try:
        if path.suffix == ".jsonl":
            with open(path, encoding="utf-8-sig") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise TicketpackError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                    if not isinstance(obj, dict) or "text" not in obj or "label" not in obj:
                        raise TicketpackError(f"{path}:{lineno}: expected an object with 'text' and 'label'")
                    rows.append(_check_row(obj["text"], obj["label"], f"{path}:{lineno}"))
        elif path.suffix == ".csv":
            with open(path, encoding="utf-8-sig", newline="") as fh:
                reader = csv.DictReader(fh)
                if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
                    raise TicketpackError(f"{path}: CSV needs a header with 'text' and 'label' columns")
                for rec in reader:
                    label: int | str = rec["label"]
                    if isinstance(label, str) and label.strip().lstrip("-").isdigit():
                        label = int(label)
                    rows.append(_check_row(rec["text"], label, f"{path}:{reader.line_num}"))
        else:
            raise TicketpackError(f"{path}: unsupported file type; use .jsonl or .csv")
    except UnicodeDecodeError:
        raise TicketpackError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise TicketpackError(f"cannot read {path}: {exc.strerror}") from None
    return rows


def read_text_domain(path: Path, where: str) -> DomainSource:
    """A ``.jsonl``/``.csv`` text domain, exact duplicate rows dropped (they would leak between splits)."""
    try:
        digest = sha256_file(path)  # the content, not the mtime: a rewrite within a clock tick is still seen
    except OSError as exc:
        raise TicketpackError(f"cannot read {path}: {exc.strerror}") from None
    rows = read_rows(path)
    if not rows:
        raise TicketpackError(f"{path} has no rows")
    unique = list(dict.fromkeys(rows))
    raw = np.array([text for text, _ in unique], dtype=object)
    return DomainSource(
        where=where, kind=TextPreprocessing, rows=ArrayRows(raw), labels=[label for _, label in unique],
        cache_key=digest,
        info={"rows": len(rows), "duplicates_dropped": len(rows) - len(unique), "file_sha256": digest},
    )
