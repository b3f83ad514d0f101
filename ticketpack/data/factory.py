"""``--dataset path/to/file.py:factory`` (or ``package.module:factory``): a user's own code hands over a domain.

The factory is called as ``factory(domain)`` and returns a dict:

- ``"x"`` and ``"y"``: every row (ticketpack cuts stratified splits with the run's seed), or ``"train"``, ``"val"``
  and ``"test"``: the user's own splits, each a pair ``(x, y)`` or a dataset object (``len(ds)``, ``ds[i] -> (x, y)``:
  a ``torch.utils.data.Dataset``), whose items are read when a batch needs them;
- ``"kind"``: the input kind (``image``, ``text``, ``tabular`` or one registered), or ``"preprocessing"``: a dict of
  that kind's options with its ``kind`` (what a served model needs to preprocess raw input: pixel range, resize, ...);
- ``"labels"`` (optional): class names in index order, when ``y`` holds indices 0..K-1.

A ``domains`` attribute on the factory (a list of names) lets ticketpack list and check domains before running it.
The factory's source file is hashed into the ticket's manifest, as a model factory's is.
"""

from __future__ import annotations

import traceback
from typing import Any

import numpy as np

from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.core.references import file_sha256, resolve_reference
from ticketpack.data.base import DomainData, SplitConfig
from ticketpack.data.domain import DomainSource, assemble
from ticketpack.data.kinds import KINDS, InputKind
from ticketpack.data.rows import ArrayRows, ItemRows, Rows

SPLITS = ("train", "val", "test")


class FactoryDataset:
    """Domains made by a user's function (see the module's docstring)."""

    def __init__(self, reference: str) -> None:
        self.name = reference
        self.factory, self.path = resolve_reference(reference, "dataset")

    def fingerprint(self) -> dict[str, str | None]:
        """The factory's source file and its sha256, for the manifest."""
        return {"file": str(self.path) if self.path else None, "sha256": file_sha256(self.path)}

    def domains(self) -> list[str]:
        listed = getattr(self.factory, "domains", None)
        listed = listed() if callable(listed) else listed
        return [str(d) for d in listed] if isinstance(listed, (list, tuple)) else []

    def check_domain(self, domain: str) -> None:
        known = self.domains()
        if known and domain not in known:
            raise TicketpackError(f"unknown domain {domain!r} of {self.name}; known: {', '.join(known)}")

    def load(self, domain: str, seed: int, split: SplitConfig, preprocessing: InputKind | None = None,
             label_names: list[str] | None = None, labels_of: str = "the label set",
             options: dict[str, Any] | None = None) -> DomainData:
        self.check_domain(domain)
        where = f"{self.name}({domain!r})"
        try:
            out = self.factory(domain)
        except TicketpackError:
            raise
        except Exception as exc:
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
            at = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
            raise FieldError(f"`dataset` {where} raised {type(exc).__name__}: {exc}{at}", fields=["dataset"]) from None
        source = _source(out, where)
        return assemble(source, self.name, domain, seed, split, preprocessing, label_names, labels_of, options)


def _source(out: Any, where: str) -> DomainSource:
    if not isinstance(out, dict):
        raise FieldError(f"`dataset` {where} returned {type(out).__name__}; expected a dict with 'x' and 'y' (or "
                              "'train', 'val', 'test') and 'kind'")
    prep = out.get("preprocessing") or {}
    if not isinstance(prep, dict):
        raise FieldError(f"`dataset` {where}: 'preprocessing' must be a dict of the kind's options")
    kind_name = out.get("kind", prep.get("kind"))
    if kind_name is None:
        raise FieldError(f"`dataset` {where}: say what x holds with 'kind' ({', '.join(KINDS.list())})")
    kind = KINDS.get(str(kind_name))
    names = out.get("labels")
    options = {k: v for k, v in prep.items() if k != "kind"}
    if "x" in out or "y" in out:
        rows, labels = _rows(out.get("x"), out.get("y"), names, where)
        return DomainSource(where, kind, rows, labels, options=options, info={"rows": len(rows)})
    if all(s in out for s in SPLITS):
        given = {}
        for s in SPLITS:
            part = out[s]
            given[s] = _rows(*part, names, f"{where}[{s!r}]") if isinstance(part, (tuple, list)) and len(part) == 2 \
                else _rows(part, None, names, f"{where}[{s!r}]")
        return DomainSource(where, kind, given=given, options=options,
                            info={"rows": sum(len(r) for r, _ in given.values())})
    raise FieldError(f"`dataset` {where} returned a dict with {sorted(out)}; it needs 'x' and 'y', or 'train', "
                          "'val' and 'test'")


def _rows(x: Any, y: Any, names: list | None, where: str) -> tuple[Rows, list]:
    """Rows and each row's label value from arrays (or lists), or from a dataset object (``y`` None)."""
    if y is None and x is not None and hasattr(x, "__getitem__") and hasattr(x, "__len__") and not isinstance(
            x, (np.ndarray, list, tuple)):
        rows = ItemRows(x, where)
        labels = rows.labels()
    else:
        if x is None or y is None:
            raise FieldError(f"`dataset` {where}: needs both 'x' and 'y'")
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        if hasattr(y, "detach"):
            y = y.detach().cpu().numpy()
        if isinstance(x, (list, tuple)) and x and all(isinstance(v, str) for v in x):
            x = np.asarray(x, dtype=object)
        try:
            x = np.asarray(x) if not isinstance(x, np.ndarray) else x
        except ValueError:
            raise FieldError(f"`dataset` {where}: 'x' is ragged; give an array (or a dataset object)") from None
        y = np.asarray(y)
        if y.ndim != 1:
            raise FieldError(f"`dataset` {where}: 'y' must be one label per row; it has shape {y.shape}")
        if len(x) != len(y):
            raise FieldError(f"`dataset` {where}: 'x' has {len(x)} rows but 'y' has {len(y)}")
        if x.dtype != object and not np.issubdtype(x.dtype, np.number):
            raise FieldError(f"`dataset` {where}: 'x' holds {x.dtype} values")
        rows, labels = ArrayRows(x), y.tolist()
    if names is not None:
        names = [str(n) for n in names]
        try:
            labels = [names[int(v)] for v in labels]
        except (ValueError, IndexError, TypeError):
            raise FieldError(f"`dataset` {where}: with 'labels', y must hold indices 0..{len(names) - 1}") from None
    return rows, labels
