"""Datasets, their domains and the kinds of input (numpy only: no torch here, so serving can reuse the preprocessing)."""

from ticketpack.data.base import DomainData, Split, SplitConfig
from ticketpack.data.kinds import (
           KINDS,
           ImagePreprocessing,
           InputKind,
           Preprocessing,
           TabularPreprocessing,
           TextPreprocessing,
           register_kind,
)
from ticketpack.data.registry import get

__all__ = ["KINDS", "DomainData", "ImagePreprocessing", "InputKind", "Preprocessing", "Split", "SplitConfig",
           "TabularPreprocessing", "TextPreprocessing", "get", "register_kind"]
