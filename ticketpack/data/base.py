"""What a dataset hands the rest of ticketpack: a domain with stratified train/val/test splits."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ticketpack.core.errors import TicketpackError
from ticketpack.data.kinds import InputKind
from ticketpack.data.rows import Rows


class SplitConfig(BaseModel):
    """Fractions of a domain held out for validation and test; the rest trains."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of each domain used for validation.")
    test_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of each domain used for test.")


@dataclass(frozen=True)
class Split:
    """One split: its raw rows (what a user would feed a served model), their label indices, and the preprocessing
    that turns rows into model input. ``features`` holds the model input of every row when it fits in memory (small
    arrays, featurized text); otherwise :meth:`batch` preprocesses the rows a batch asks for (image files)."""

    rows: Rows
    y: np.ndarray
    preprocessing: InputKind
    features: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    @property
    def streamed(self) -> bool:
        """True when batches are read and preprocessed as they are asked for (worth loader worker processes)."""
        return self.features is None and not self.rows.in_memory

    def batch(self, idx: np.ndarray) -> np.ndarray:
        """Model input of rows ``idx``."""
        if self.features is not None:
            return self.features[idx]
        return self.preprocessing.transform(self.rows.take(idx))

    @property
    def raw(self) -> Any:
        """Every raw row (read whole: for evaluation on ONNX Runtime, which preprocesses them itself)."""
        return self.rows.take(np.arange(len(self)))

    @property
    def x(self) -> np.ndarray:
        """Model input of every row."""
        return self.batch(np.arange(len(self)))


@dataclass(frozen=True)
class DomainData:
    dataset: str
    domain: str
    label_names: list[str]
    preprocessing: InputKind
    train: Split
    val: Split
    test: Split
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise TicketpackError(f"unknown split {name!r}; known: train, val, test")
        return getattr(self, name)


class Dataset(Protocol):
    """A named source of labelled domains (see ``ticketpack.data.registry``)."""

    name: str

    def domains(self) -> list[str]: ...

    def check_domain(self, domain: str) -> None:
        """Refuse an unknown domain cheaply (no rows read)."""
        ...

    def load(self, domain: str, seed: int, split: SplitConfig, preprocessing: InputKind | None = None,
             label_names: list[str] | None = None, labels_of: str = "the label set",
             options: dict[str, Any] | None = None) -> DomainData:
        """The domain cut into train/val/test with ``seed``. ``preprocessing``: a ticket's or a model's, used as is
        (else one is fitted to the training split, with ``options`` over the kind's defaults); ``label_names``: the
        classes and their order that the domain must have."""
        ...


def stratified_indices(y: np.ndarray, seed: int, split: SplitConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic stratified train/val/test index arrays for labels ``y``."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    counts = np.bincount(y)
    if (counts[counts > 0] < 3).any():
        raise TicketpackError("every class needs at least 3 examples to make train/val/test splits")
    rest, test = train_test_split(idx, test_size=split.test_fraction, random_state=seed, stratify=y)
    val_share = split.val_fraction / (1.0 - split.test_fraction)
    train, val = train_test_split(rest, test_size=val_share, random_state=seed, stratify=y[rest])
    return np.sort(train), np.sort(val), np.sort(test)


class SplitWarning(UserWarning):
    """A class's share differs between the splits: accuracies on them are not comparable as they stand."""


IMBALANCE_POINTS = 5.0  # a class share that differs by more than this between splits is reported


def check_balance(where: str, label_names: list[str], splits: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """Each class's share of each split; warns when a class's share of a split differs from its share of the
    train split by more than :data:`IMBALANCE_POINTS` (stratified splits of small classes can, and so can a
    user's own files)."""
    k = len(label_names)
    shares = {name: (np.bincount(y, minlength=k) / max(len(y), 1)).round(4).tolist() for name, y in splits.items()}
    train = shares.get("train")
    worst = None
    for name, share in shares.items():
        if train is None or name == "train":
            continue
        for c in range(k):
            gap = 100 * abs(share[c] - train[c])
            if gap > IMBALANCE_POINTS and (worst is None or gap > worst[0]):
                worst = (gap, name, c)
    if worst is not None:
        gap, name, c = worst
        warnings.warn(
            f"{where}: class {label_names[c]!r} is {100 * shares[name][c]:.1f}% of the {name} split but "
            f"{100 * train[c]:.1f}% of train ({gap:.1f} points apart): accuracy on {name} weighs the classes "
            "differently from training",
            SplitWarning, stacklevel=3,
        )
    return shares


def check_labels(y: np.ndarray, where: str) -> None:
    if len(y) == 0:
        raise TicketpackError(f"{where} has no rows")
    if len(np.unique(y)) < 2:
        raise TicketpackError(f"{where} has only one class; a classifier needs at least two")
