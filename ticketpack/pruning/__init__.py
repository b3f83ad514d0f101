"""Masks and the strategies that make them."""

from ticketpack.pruning import mask
from ticketpack.pruning.strategies import STRATEGIES, prune

__all__ = ["STRATEGIES", "mask", "prune"]
