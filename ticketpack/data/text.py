"""Labelled text in a directory: one ``<domain>.jsonl`` (``{"text": str, "label": int|str}`` per line) or
``<domain>.csv`` (columns ``text,label``) per domain, the layout of ``../shared/data/mdsd/``.

Exact duplicate rows are dropped before splitting (the review data repeats some reviews, which would
otherwise leak between train and test). Labels may be ints or strings; the label set is sorted and recorded.

No document is cut silently: when a document has more ids (n-grams included) than ``max_tokens``, loading records
the count in ``DomainData.info["truncated"]`` and warns with a :class:`TruncationWarning` that says how many.

A process keeps the domain files it featurized last (up to 1 GiB of ids, keyed by the file's sha256, the
featurization and the labels), so loading one again only splits it.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ticketpack.data.base import DomainData, SplitConfig, split_domain
from ticketpack.data.preprocessing import TextPreprocessing
from ticketpack.errors import TicketpackError
from ticketpack.fileio import sha256_file

SUFFIXES = (".jsonl", ".csv")


class TruncationWarning(UserWarning):
    """Some documents had more ids than ``max_tokens`` and lost their tail."""


def truncation_report(where: str, lengths: np.ndarray, max_tokens: int) -> dict:
    """Counts of cut documents for ``DomainData.info``; warns (naming ``where``) when any was cut."""
    cut = int((lengths > max_tokens).sum())
    if cut:
        warnings.warn(
            f"{where}: {cut} of {len(lengths)} documents have more than max_tokens={max_tokens} ids (n-grams included;"
            f" the longest has {int(lengths.max())}) and were cut; raise text.max_tokens to keep them whole",
            TruncationWarning, stacklevel=3,
        )
    return {"max_tokens": max_tokens, "truncated": cut, "longest_ids": int(lengths.max(initial=0))}


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
            with open(path, encoding="utf-8") as fh:
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
            with open(path, encoding="utf-8", newline="") as fh:
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


def sort_labels(labels: set[int | str]) -> list[int | str]:
    if all(isinstance(v, int) for v in labels):
        return sorted(labels)
    return sorted(labels, key=str)


@dataclass(frozen=True)
class _Featurized:
    """A domain file read, deduplicated and featurized: what every split seed of it starts from."""

    label_names: list[str]
    raw: np.ndarray
    y: np.ndarray
    x: np.ndarray
    lengths: np.ndarray
    info: dict


class _LRU:
    """The most recently used values up to ``max_bytes`` in all: a process that loads the same domain file again
    (a transfer worker serving run after run, a study's driver) skips reading and featurizing it. Splits index
    copies out of a value, so no caller can change one."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[object, int]] = OrderedDict()

    def get(self, key: tuple) -> object | None:
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key][0]

    def put(self, key: tuple, value: object, nbytes: int) -> None:
        if nbytes > self.max_bytes:
            return
        self._items[key] = (value, nbytes)
        while sum(n for _, n in self._items.values()) > self.max_bytes:
            self._items.popitem(last=False)


_FEATURIZED = _LRU(max_bytes=1 << 30)


class TextDirDataset:
    """A dataset directory given by path; each domain is a file in it."""

    kind = "text"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.name = str(self.root)
        if not self.root.is_dir():
            raise TicketpackError(f"dataset directory not found: {self.root}")

    def domains(self) -> list[str]:
        return sorted(p.stem for p in self.root.iterdir() if p.suffix in SUFFIXES)

    def file(self, domain: str) -> Path:
        found = [self.root / f"{domain}{s}" for s in SUFFIXES if (self.root / f"{domain}{s}").exists()]
        if not found:
            raise TicketpackError(
                f"unknown domain {domain!r} in {self.root}; known: {', '.join(self.domains()) or '(none)'}"
            )
        if len(found) > 1:
            raise TicketpackError(f"domain {domain!r} is ambiguous in {self.root}: both .jsonl and .csv exist")
        return found[0]

    def load(
        self,
        domain: str,
        seed: int,
        split: SplitConfig,
        preprocessing: TextPreprocessing | None = None,
        label_names: list[str] | None = None,
        labels_of: str = "the label set",
    ) -> DomainData:
        """``label_names`` fixes the classes and their order (a ticket's or a model's, named by ``labels_of``);
        a file label matches a name by its text, so ``1`` and ``"1"`` are the same class."""
        prep = preprocessing or TextPreprocessing()
        path = self.file(domain)
        try:
            digest = sha256_file(path)  # the content, not the mtime: a rewrite within a clock tick is still seen
        except OSError as exc:
            raise TicketpackError(f"cannot read {path}: {exc.strerror}") from None
        key = (digest, prep.model_dump_json(), None if label_names is None else tuple(label_names))
        done = _FEATURIZED.get(key)
        if done is None:
            done = self._featurize(path, digest, domain, prep, label_names, labels_of)
            _FEATURIZED.put(key, done, done.x.nbytes + done.y.nbytes)
        info = {**done.info, **truncation_report(f"{self.name}/{domain}", done.lengths, prep.max_tokens)}
        return split_domain(self.name, domain, list(done.label_names), prep, done.raw, done.y, seed, split, info,
                            x=done.x)

    def _featurize(self, path: Path, digest: str, domain: str, prep: TextPreprocessing,
                   label_names: list[str] | None, labels_of: str) -> _Featurized:
        rows = read_rows(path)
        if not rows:
            raise TicketpackError(f"{path} has no rows")
        unique = list(dict.fromkeys(rows))  # exact duplicates leak between splits
        if label_names is None:
            label_names = [str(v) for v in sort_labels({label for _, label in unique})]
        index = {name: i for i, name in enumerate(label_names)}
        unknown = sorted({str(label) for _, label in unique} - set(index))
        if unknown:
            raise TicketpackError(
                f"{self.name}/{domain} has labels {unknown} that {labels_of} does not know ({labels_of}: {label_names})"
            )
        y = np.array([index[str(label)] for _, label in unique], dtype=np.int64)
        raw = np.array([text for text, _ in unique], dtype=object)
        x, lengths = prep.transform_counting(raw)
        info = {"rows": len(rows), "duplicates_dropped": len(rows) - len(unique), "file_sha256": digest}
        return _Featurized(list(label_names), raw, y, x, lengths, info)
