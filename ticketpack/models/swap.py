"""Swapping one submodule of a model for another, by its dotted name: what compaction and masked layers do."""

from __future__ import annotations

from torch import nn


def replace_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` where ``model``'s submodule ``name`` (as ``named_modules`` names it) is, in place."""
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)
