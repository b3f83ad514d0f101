"""Datasets and their domains (numpy only: no torch here, so serving can reuse the preprocessing)."""

from ticketpack.data.base import DomainData, Split, SplitConfig
from ticketpack.data.preprocessing import ImagePreprocessing, Preprocessing, TextPreprocessing
from ticketpack.data.registry import get

__all__ = ["DomainData", "ImagePreprocessing", "Preprocessing", "Split", "SplitConfig", "TextPreprocessing", "get"]
