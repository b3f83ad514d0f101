"""One path from a domain's rows to its splits, whatever the kind of input and wherever the rows come from.

A dataset's reader finds a domain's rows and their labels (:class:`DomainSource`); :func:`assemble` indexes the
labels, cuts the splits (the user's own, or stratified ones), fits the preprocessing to the training split (unless a
ticket's or a model's is given) and keeps the model input in memory where it is small.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ticketpack.core.errors import TicketpackError
from ticketpack.data.base import (
    DomainData,
    Split,
    SplitConfig,
    check_balance,
    check_labels,
    stratified_indices,
)
from ticketpack.data.kinds import InputKind
from ticketpack.data.rows import ArrayRows, Rows

FIT_SAMPLE = 2048  # training rows a preprocessing's statistics are fitted on (seeded; all rows when fewer)
IN_MEMORY_BYTES = 512 << 20  # model input kept whole below this; larger data is preprocessed batch by batch


@dataclass
class DomainSource:
    """What a dataset's reader found for one domain, before labels are indexed and rows split."""

    where: str  # dataset/domain, for messages
    kind: type[InputKind]
    rows: Rows | None = None  # every row, when the user gave no splits
    labels: list = field(default_factory=list)  # each row's label value
    given: dict[str, tuple[Rows, list]] | None = None  # the user's own train/val/test
    options: dict[str, Any] = field(default_factory=dict)  # what the reader learned (channels, pixel range, columns)
    fixed: InputKind | None = None  # a preprocessing the dataset prescribes (digits)
    cache_key: str | None = None  # the content's identity (a file's sha256): featurization is reused by it
    info: dict = field(default_factory=dict)
    check: Callable[[dict[str, Any]], None] | None = None  # refuses options the rows cannot take (before fitting)


def _is_number(value: object) -> bool:
    """An int label, or a string of digits (``"7"`` from a CSV is the class 7)."""
    return isinstance(value, (int, np.integer)) or (isinstance(value, str) and value.strip().lstrip("-").isdigit())


def _label_name(value: object) -> str:
    """The class name a label value stands for: a number as its integer text, a word as itself."""
    return str(int(value)) if _is_number(value) else str(value).strip()


def label_names_of(values: list, where: str) -> list[str]:
    """The sorted class names of label values: numbers (ints, or strings of digits) sort as numbers, words as text;
    a mix of the two is refused (``0, 1, "pos", "neg"`` would silently be four classes)."""
    distinct = {str(v).strip() if isinstance(v, str) else v for v in values}
    numeric = {v for v in distinct if _is_number(v)}
    words = distinct - numeric
    if numeric and words:
        raise TicketpackError(
            f"{where}: labels mix numbers ({', '.join(sorted(map(str, numeric))[:3])}) and words "
            f"({', '.join(sorted(map(str, words))[:3])}); use one or the other"
        )
    if numeric:
        return [str(v) for v in sorted({int(v) for v in numeric})]
    return sorted(str(v) for v in words)


def check_same_labels(have: list[str], want: list[str], where: str, labels_of: str) -> None:
    extra, missing = sorted(set(have) - set(want)), sorted(set(want) - set(have))
    if extra or missing:
        parts = ([f"labels {extra} that {labels_of} does not have"] if extra else []) + \
                ([f"no rows of {missing}, which {labels_of} has"] if missing else [])
        raise TicketpackError(f"{where} has {' and '.join(parts)}; the label set must be the same across the "
                              f"domains of one run ({labels_of}: {want})")


def _index(values: list, names: list[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    return np.fromiter((index[_label_name(v)] for v in values), dtype=np.int64, count=len(values))


class FeatureCache:
    """Featurized domains (the model input of every row) kept for reuse, keyed by the content's identity (a file's
    sha256) and the exact featurization: loading a domain it holds only splits it.

    Bounded: at most ``max_bytes`` of model input in all (default 1 GiB), the least recently used going first; a
    domain larger than the bound is not kept. The object that owns one decides how long it lives: a transfer
    worker's (``transfer.executors._Contexts``) serves every run the worker works on, an executor's the runs it is
    handed (a study's driver loads the same domains run after run). :meth:`using` makes it the cache that
    :func:`assemble` consults while a block runs (in that thread or task only); outside such a block nothing is
    kept, so loading a domain twice featurizes it twice::

        features = FeatureCache()
        with features.using():
            data = create_dataset("../shared/data/mdsd").load("books", 0, SplitConfig())
    """

    DEFAULT_BYTES = 1 << 30

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        if max_bytes < 0:
            raise TicketpackError(f"max_bytes must be at least 0, not {max_bytes}")
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """The bytes of model input held now (at most ``max_bytes``)."""
        return self._bytes

    def get(self, key: tuple) -> object | None:
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key][0]

    def put(self, key: tuple, value: object, nbytes: int) -> None:
        if nbytes > self.max_bytes:
            return
        if key in self._items:
            self._bytes -= self._items.pop(key)[1]
        self._items[key] = (value, nbytes)
        self._bytes += nbytes
        while self._bytes > self.max_bytes:
            self._bytes -= self._items.popitem(last=False)[1][1]

    def clear(self) -> None:
        """Drop every featurized domain."""
        self._items.clear()
        self._bytes = 0

    @contextmanager
    def using(self) -> Iterator[FeatureCache]:
        """While the block runs, domains loaded in this thread (or task) are featurized through this cache."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


_ACTIVE: ContextVar[FeatureCache | None] = ContextVar("ticketpack_feature_cache", default=None)


def _features(prep: InputKind, rows: Rows, where: str, key: tuple | None) -> tuple[np.ndarray | None, dict]:
    """Model input of every row, when the rows are in memory and it is small enough to keep (else None)."""
    if not rows.in_memory:
        return None, {}
    per_row = int(np.prod(prep.input_shape)) * np.dtype(prep.input_dtype).itemsize
    if per_row * len(rows) > IN_MEMORY_BYTES:
        return None, {}
    cache = _ACTIVE.get() if key is not None else None
    hit = cache.get(key) if cache is not None else None
    x, info = hit if hit is not None else prep.transform_all(rows.take(np.arange(len(rows))), where)
    if cache is not None and hit is None:
        cache.put(key, (x, info), x.nbytes)
    prep.report(info, where)
    return x, {k: v for k, v in info.items() if k != "documents"}


def assemble(
    src: DomainSource, dataset: str, domain: str, seed: int, split: SplitConfig,
    preprocessing: InputKind | None = None, label_names: list[str] | None = None,
    labels_of: str = "the label set", options: dict[str, Any] | None = None,
) -> DomainData:
    """The domain's :class:`DomainData`: labels indexed, rows split, preprocessing fitted or checked."""
    where = src.where
    if preprocessing is not None and type(preprocessing) is not src.kind:
        raise TicketpackError(f"{where} holds {src.kind.model_fields['kind'].default} inputs but {labels_of} was "
                              f"made for {preprocessing.kind} inputs")
    parts = src.given or {"all": (src.rows, src.labels)}
    every = [v for _, labels in parts.values() for v in labels]
    if not every:
        raise TicketpackError(f"{where} has no rows")
    names = label_names_of(every, where)
    if label_names is not None:
        check_same_labels(names, list(label_names), where, labels_of)
        names = list(label_names)
    if len(names) < 2:
        raise TicketpackError(f"{where} has only one class ({names[0]}); a classifier needs at least two")

    if src.given is not None:
        pieces = {name: (rows, _index(labels, names), None) for name, (rows, labels) in src.given.items()}
    else:
        y_all = _index(src.labels, names)
        check_labels(y_all, where)
        pieces = {name: (src.rows, y_all[idx], idx)
                  for name, idx in zip(("train", "val", "test"), stratified_indices(y_all, seed, split))}

    if preprocessing is not None:
        prep = preprocessing
    elif src.fixed is not None:
        prep = src.fixed
    else:
        if src.check is not None:
            src.check({**src.options, **(options or {})})
        rows, y, idx = pieces["train"]
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(y), size=min(len(y), FIT_SAMPLE), replace=False))
        sample = rows.take(pick if idx is None else idx[pick])
        prep = src.kind.fit(sample, {**src.options, **(options or {})}, where)

    info = dict(src.info)
    splits = {}
    if src.given is None:
        key = None if src.cache_key is None else (src.cache_key, prep.model_dump_json())
        x_all, extra = _features(prep, src.rows, where, key)
        info.update(extra)
        for name, (rows, y, idx) in pieces.items():
            sub = ArrayRows(rows.take(idx)) if rows.in_memory else _Subset(rows, idx)
            splits[name] = Split(sub, y, prep, None if x_all is None else x_all[idx])
    else:
        for name, (rows, y, _) in pieces.items():
            x, extra = _features(prep, rows, f"{where}/{name}", None)
            info.update(extra)
            splits[name] = Split(rows, y, prep, x)
    for name, s in splits.items():
        check_labels(s.y, f"{where} ({name} split)")
    info["class_shares"] = check_balance(where, names, {n: s.y for n, s in splits.items()})
    return DomainData(dataset=dataset, domain=domain, label_names=names, preprocessing=prep,
                      train=splits["train"], val=splits["val"], test=splits["test"], info=info)


class _Subset:
    """Some rows of a streamed source, by index."""

    in_memory = False

    def __init__(self, rows: Rows, idx: np.ndarray) -> None:
        self.rows, self.idx = rows, idx

    def __len__(self) -> int:
        return len(self.idx)

    def take(self, idx: np.ndarray) -> Any:
        return self.rows.take(self.idx[idx])


