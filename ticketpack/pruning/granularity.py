"""Granularities: what one pruning step removes, single weights (``"weight"``) or whole units (``"neuron"``).

A config names the granularity with a string (``PruneConfig.granularity``, ``--granularity``); the code that
prunes, trains and draws random masks asks the registered :class:`Granularity` it names for its properties and its
steps instead of comparing names::

    granularity = get_granularity(config.prune.granularity)
    structure = trace(model, ...) if granularity.needs_structure else None
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ticketpack.core.registry import Registry
from ticketpack.pruning.mask import Mask, random_like
from ticketpack.pruning.structure import Structure, expand, shuffle_units


class Granularity:
    """What a pruning step removes. ``needs_structure``: whether its steps need the model's unit groups
    (:func:`ticketpack.pruning.structure.trace`), traced once per model before pruning, training and random masks."""

    name: ClassVar[str]
    needs_structure: ClassVar[bool] = False

    def prune(self, strategy: Any, weights: dict[str, torch.Tensor], mask: Mask, rate: float, output_names: list[str],
              output_rate: float, gen: torch.Generator, structure: Structure | None) -> Mask:
        """One pruning step of ``strategy`` (a :class:`ticketpack.pruning.strategies.Strategy`)."""
        raise NotImplementedError

    def training_mask(self, mask: Mask, structure: Structure | None, params: dict[str, torch.Tensor]) -> Mask:
        """The mask to train and export with, from the mask over the prunable weights."""
        return mask

    def random_like(self, mask: Mask, structure: Structure | None, gen: torch.Generator) -> Mask:
        """A random mask that keeps as much of each layer as ``mask`` does, at this granularity."""
        return random_like(mask, gen)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


GRANULARITIES: Registry[type[Granularity]] = Registry("granularity")


def register_granularity(cls: type[Granularity]) -> type[Granularity]:
    """Register a :class:`Granularity` subclass under its ``name`` (usable as a decorator)."""
    GRANULARITIES.register(cls.name, cls)
    return cls


@register_granularity
class WeightGranularity(Granularity):
    """Single weights: the hidden layers at the pruning rate, the output layer at its own rate."""

    name = "weight"

    def prune(self, strategy, weights, mask, rate, output_names, output_rate, gen, structure):
        hidden = {n: m for n, m in mask.items() if n not in output_names}
        output = {n: m for n, m in mask.items() if n in output_names}
        new = strategy.prune_weights(weights, hidden, rate, gen) if hidden else {}
        if output:
            new.update(strategy.prune_weights(weights, output, output_rate, gen))
        return {n: new[n] for n in mask}


@register_granularity
class NeuronGranularity(Granularity):
    """Whole units (hidden neurons, conv channels, embedding dimensions, attention heads) of the model's unit groups,
    which export compacts into smaller dense layers; a pruned unit loses its biases and norm parameters too."""

    name = "neuron"
    needs_structure = True

    def prune(self, strategy, weights, mask, rate, output_names, output_rate, gen, structure):
        return strategy.prune_units(weights, mask, rate, _needs(structure), gen)

    def training_mask(self, mask, structure, params):
        return expand(mask, _needs(structure), params)

    def random_like(self, mask, structure, gen):
        return shuffle_units(mask, _needs(structure), gen)


def _needs(structure: Structure | None) -> Structure:
    if structure is None:
        raise ValueError("neuron granularity needs the model's structure (ticketpack.pruning.structure.trace)")
    return structure


def get_granularity(value: str | Granularity) -> Granularity:
    """The granularity a config names (``"weight"``, ``"neuron"``); an instance as is."""
    return value if isinstance(value, Granularity) else GRANULARITIES.create(value)


__all__ = ["GRANULARITIES", "Granularity", "NeuronGranularity", "WeightGranularity", "get_granularity",
           "register_granularity"]
