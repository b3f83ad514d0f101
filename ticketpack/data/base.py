"""What a dataset hands the rest of ticketpack: a domain with stratified train/val/test splits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ticketpack.data.preprocessing import ImagePreprocessing, TextPreprocessing
from ticketpack.errors import TicketpackError


class SplitConfig(BaseModel):
    """Fractions of a domain held out for validation and test; the rest trains."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of each domain used for validation.")
    test_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of each domain used for test.")


@dataclass(frozen=True)
class Split:
    """One split: raw inputs (what a user would feed a served model), model-ready inputs and label indices."""

    raw: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class DomainData:
    dataset: str
    domain: str
    label_names: list[str]
    preprocessing: ImagePreprocessing | TextPreprocessing
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
    kind: str  # "image" or "text"

    def domains(self) -> list[str]: ...

    def load(
        self, domain: str, seed: int, split: SplitConfig, preprocessing: TextPreprocessing | None = None
    ) -> DomainData: ...


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


def split_domain(
    dataset: str, domain: str, label_names: list[str], preprocessing: ImagePreprocessing | TextPreprocessing,
    raw: np.ndarray, y: np.ndarray, seed: int, split: SplitConfig, info: dict, x: np.ndarray | None = None,
) -> DomainData:
    """Preprocess raw inputs once (unless ``x`` is given: already preprocessed) and cut them into stratified
    train/val/test splits (``seed`` picks the rows)."""
    check_labels(y, f"{dataset}/{domain}")
    if x is None:
        x = preprocessing.transform(raw)
    train, val, test = (Split(raw=raw[i], x=x[i], y=y[i]) for i in stratified_indices(y, seed, split))
    return DomainData(dataset=dataset, domain=domain, label_names=label_names, preprocessing=preprocessing,
                      train=train, val=val, test=test, info=info)


def check_labels(y: np.ndarray, where: str) -> None:
    if len(y) == 0:
        raise TicketpackError(f"{where} has no rows")
    if len(np.unique(y)) < 2:
        raise TicketpackError(f"{where} has only one class; a classifier needs at least two")
