"""Pruning strategies: each turns (trained weights, current mask) into a sparser mask.

A strategy is a score plus a scope (:class:`Strategy`): it scores magnitudes, the lowest scores are pruned, and
``scope`` says whether they compete across all layers together ("global") or within each layer ("layer"). Its
fields are its options (``PruneConfig.strategy_options``). Every strategy removes ``rate`` of the weights that are
still kept; the output layer is pruned on its own at ``output_rate`` (Frankle & Carbin prune it at half the rate of
the rest).

With ``granularity="neuron"`` the same strategies remove whole units instead of single weights (hidden neurons,
conv channels, embedding dimensions; see ``ticketpack.pruning.structure``): ``rate`` of the remaining units, each
unit's incoming and outgoing weights together, so that export can compact the ticket into smaller dense layers.

Adding a strategy is one registered class; its docstring is what ``ticketpack list strategies`` shows::

    @STRATEGIES("largest")
    class Largest(Strategy):
        power: float = 1.0

        def score(self, magnitude, gen):
            return -magnitude**self.power
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict

from ticketpack.core.registry import Registry
from ticketpack.pruning.granularity import Granularity, get_granularity
from ticketpack.pruning.mask import Mask
from ticketpack.pruning.structure import Group, Structure, per_unit, set_units


class Strategy(BaseModel):
    """Which kept weights (or units) a pruning step removes: those with the lowest :meth:`score`, across every
    layer (``scope = "global"``) or the same fraction of each layer (``scope = "layer"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    scope: ClassVar[Literal["global", "layer"]] = "layer"

    @abstractmethod
    def score(self, magnitude: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Scores shaped like ``magnitude``, lowest pruned first. ``magnitude`` is a layer's ``|w|`` at weight
        granularity, and a group's per-unit ``||incoming|| × ||outgoing||`` at neuron granularity; ``gen`` is the
        round's seeded generator, the only randomness a strategy may use."""

    def prune_weights(self, weights: dict[str, torch.Tensor], mask: Mask, rate: float, gen: torch.Generator) -> Mask:
        """Remove ``rate`` of the weights ``mask`` keeps, lowest score first, within this strategy's scope."""
        names = sorted(mask)
        scores = {n: self.score(weights[n].detach().abs().float(), gen).flatten().float() for n in names}
        if self.scope == "layer":
            return {n: _prune_smallest(scores[n], mask[n].flatten(), rate).view_as(mask[n]) for n in names}
        flat_kept = torch.cat([mask[n].flatten() for n in names])
        new = _prune_smallest(torch.cat([scores[n] for n in names]), flat_kept, rate)
        out, start = {}, 0
        for n in names:
            out[n] = new[start : start + mask[n].numel()].view_as(mask[n])
            start += mask[n].numel()
        return out

    def prune_units(self, weights: dict[str, torch.Tensor], mask: Mask, rate: float, structure: Structure,
                    gen: torch.Generator) -> Mask:
        """Remove ``rate`` of the remaining units (at least one unit of every group survives); a pruned unit loses
        every weight slice of its group.

        Layer scope: the lowest-scoring units of each group, the same fraction per group. Global scope: the lowest
        scores across groups, each divided by the mean score of its group's living units, so that layers of
        different scale compete fairly.
        """
        kept = {n: weights[n].detach().float() * mask[n] for n in mask}
        alive, scores = [], []
        for g in structure.groups:
            a, magnitude = _unit_scores(kept, mask, g)
            alive.append(a)
            scores.append(self.score(magnitude, gen).flatten().float())
        drop = _drop_global(alive, scores, rate) if self.scope == "global" else _drop_per_group(alive, scores, rate)
        new = {n: m.clone() for n, m in mask.items()}
        for g, d in zip(structure.groups, drop):
            gone = torch.nonzero(d, as_tuple=True)[0]
            if len(gone):
                set_units(new, g, gone, False)
        return new


STRATEGIES: Registry[type[Strategy]] = Registry("pruning strategy")


@STRATEGIES("layerwise")
class LayerwiseMagnitude(Strategy):
    """The smallest-magnitude kept weights of each layer, the same fraction per layer (units: the smallest
    ||incoming|| × ||outgoing|| of each group)."""

    def score(self, magnitude: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return magnitude


@STRATEGIES("global")
class GlobalMagnitude(LayerwiseMagnitude):
    """The smallest-magnitude kept weights across all hidden layers together (units: scores normalized by their
    group's mean, then ranked across groups)."""

    scope = "global"


@STRATEGIES("random")
class RandomPrune(Strategy):
    """Random kept weights (or units) of each layer, the same fraction per layer: a baseline, not a ticket."""

    def score(self, magnitude: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return torch.rand(magnitude.shape, generator=gen)


def prune(
    strategy: Strategy | str,
    weights: dict[str, torch.Tensor],
    mask: Mask,
    rate: float,
    output_names: list[str],
    output_rate: float,
    generator: torch.Generator,
    granularity: Granularity | str = "weight",
    structure: Structure | None = None,
) -> Mask:
    """Apply ``strategy`` (an instance, or a registered name with default options) to the hidden layers at
    ``rate`` and to the output layer(s) at ``output_rate``.

    ``granularity`` (a :class:`~ticketpack.pruning.granularity.Granularity` or its name): ``"neuron"`` prunes whole
    units of ``structure``'s groups instead (``output_rate`` does not apply: the output layer loses only the columns
    of pruned units).
    """
    if isinstance(strategy, str):
        strategy = STRATEGIES.create(strategy)
    return get_granularity(granularity).prune(strategy, weights, mask, rate, output_names, output_rate, generator,
                                              structure)


def _n_prune(kept: int, rate: float) -> int:
    return min(kept, int(round(rate * kept)))


def _prune_smallest(scores: torch.Tensor, kept: torch.Tensor, rate: float, limit: int | None = None) -> torch.Tensor:
    """New flat keep-mask: ``kept`` minus ``rate`` of its entries (at most ``limit``), those with the lowest score
    (stable: ties by index)."""
    new = kept.clone()
    idx = torch.nonzero(kept, as_tuple=True)[0]
    k = _n_prune(len(idx), rate) if limit is None else min(_n_prune(len(idx), rate), limit)
    if k == 0:
        return new
    order = torch.sort(scores[idx], stable=True).indices[:k]
    new[idx[order]] = False
    return new


def _unit_scores(kept: dict[str, torch.Tensor], mask: Mask, group: Group) -> tuple[torch.Tensor, torch.Tensor]:
    """(alive, magnitude) per unit: alive if any weight it produces with is kept; magnitude = ||incoming|| ×
    ||outgoing|| (L2 over the kept weights ``kept`` of every slice of the group; a group with no consumer weights
    scores on incoming)."""
    alive = per_unit(mask, group, "out", "any")
    score = per_unit(kept, group, "out", "sumsq").sqrt()
    if group.params("in"):
        score = score * per_unit(kept, group, "in", "sumsq").sqrt()
    return alive, score.float()


def _drop_per_group(alive: list[torch.Tensor], scores: list[torch.Tensor], rate: float) -> list[torch.Tensor]:
    """The units to drop in each group: ``rate`` of its living ones, lowest score first, one always left."""
    return [a & ~_prune_smallest(s, a, rate, limit=max(int(a.sum()) - 1, 0)) for a, s in zip(alive, scores)]


def _drop_global(alive: list[torch.Tensor], scores: list[torch.Tensor], rate: float) -> list[torch.Tensor]:
    """The units to drop across groups: ``rate`` of all living ones, lowest mean-normalized score first, one of
    every group always left."""
    flat, owner, index = [], [], []
    for i, (a, s) in enumerate(zip(alive, scores)):
        if a.any():
            s = s / s[a].mean().abs().clamp(min=1e-12)
        idx = torch.nonzero(a, as_tuple=True)[0]
        flat.append(s[idx])
        owner += [i] * len(idx)
        index.append(idx)
    flat_t = torch.cat(flat) if flat else torch.zeros(0)
    index_t = torch.cat(index) if index else torch.zeros(0, dtype=torch.long)
    k = _n_prune(len(flat_t), rate)
    left = [int(a.sum()) for a in alive]
    drop = [torch.zeros_like(a) for a in alive]
    for pos in torch.sort(flat_t, stable=True).indices.tolist():
        if k == 0:
            break
        i = owner[pos]
        if left[i] > 1:
            drop[i][index_t[pos]] = True
            left[i] -= 1
            k -= 1
    return drop
