"""Pruning strategies: each turns (trained weights, current mask) into a sparser mask.

Every strategy removes ``rate`` of the weights that are still kept; the output layer is pruned on its own at
``output_rate`` (Frankle & Carbin prune it at half the rate of the rest).

- ``global``: the smallest-magnitude kept weights across all hidden layers together.
- ``layerwise``: the smallest-magnitude kept weights of each layer, the same fraction per layer.
- ``random``: random kept weights of each layer, the same fraction per layer (a baseline, not a ticket).

With ``granularity="neuron"`` the same three names remove whole units instead of single weights (hidden neurons,
conv channels, embedding dimensions; see ``ticketpack.pruning.units``): ``rate`` of the remaining units, each
unit's incoming and outgoing weights together, so that export can compact the ticket into smaller dense layers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ticketpack.pruning.mask import Mask
from ticketpack.pruning.units import UnitGraph, UnitGroup
from ticketpack.registry import Registry

Strategy = Callable[[dict[str, torch.Tensor], Mask, float, torch.Generator], Mask]
STRATEGIES: Registry[Strategy] = Registry("pruning strategy")


def _n_prune(kept: int, rate: float) -> int:
    return min(kept, int(round(rate * kept)))


def _prune_smallest(scores: torch.Tensor, kept: torch.Tensor, k: int) -> torch.Tensor:
    """New flat keep-mask: ``kept`` minus the ``k`` kept entries with the lowest score (stable: ties by index)."""
    new = kept.clone()
    if k == 0:
        return new
    idx = torch.nonzero(kept, as_tuple=True)[0]
    order = torch.sort(scores[idx], stable=True).indices[:k]
    new[idx[order]] = False
    return new


@STRATEGIES("global")
def global_magnitude(weights: dict[str, torch.Tensor], mask: Mask, rate: float, _gen: torch.Generator) -> Mask:
    names = sorted(mask)
    flat_scores = torch.cat([weights[n].detach().abs().flatten().float() for n in names])
    flat_kept = torch.cat([mask[n].flatten() for n in names])
    new = _prune_smallest(flat_scores, flat_kept, _n_prune(int(flat_kept.sum()), rate))
    out, start = {}, 0
    for n in names:
        size = mask[n].numel()
        out[n] = new[start : start + size].view_as(mask[n])
        start += size
    return out


@STRATEGIES("layerwise")
def layerwise_magnitude(weights: dict[str, torch.Tensor], mask: Mask, rate: float, _gen: torch.Generator) -> Mask:
    out = {}
    for n in sorted(mask):
        kept = mask[n].flatten()
        new = _prune_smallest(weights[n].detach().abs().flatten().float(), kept, _n_prune(int(kept.sum()), rate))
        out[n] = new.view_as(mask[n])
    return out


@STRATEGIES("random")
def random_prune(weights: dict[str, torch.Tensor], mask: Mask, rate: float, gen: torch.Generator) -> Mask:
    out = {}
    for n in sorted(mask):
        kept = mask[n].flatten()
        scores = torch.rand(kept.numel(), generator=gen)
        out[n] = _prune_smallest(scores, kept, _n_prune(int(kept.sum()), rate)).view_as(mask[n])
    return out


def prune(
    strategy: str,
    weights: dict[str, torch.Tensor],
    mask: Mask,
    rate: float,
    output_names: list[str],
    output_rate: float,
    generator: torch.Generator,
    granularity: str = "weight",
    units: UnitGraph | None = None,
) -> Mask:
    """Apply ``strategy`` to the hidden layers at ``rate`` and to the output layer(s) at ``output_rate``.

    ``granularity="neuron"`` prunes whole units of ``units`` instead (``output_rate`` does not apply: the output
    layer loses only the columns of pruned units).
    """
    if granularity == "neuron":
        if units is None:
            raise ValueError("neuron granularity needs the model's unit graph (ticketpack.pruning.units.unit_graph)")
        return prune_units(strategy, weights, mask, rate, units, generator)
    fn = STRATEGIES.get(strategy)
    hidden = {n: m for n, m in mask.items() if n not in output_names}
    output = {n: m for n, m in mask.items() if n in output_names}
    new = fn(weights, hidden, rate, generator) if hidden else {}
    if output:
        new.update(fn(weights, output, output_rate, generator))
    return {n: new[n] for n in mask}


# ---------------------------------------------------------------- neuron granularity


def _unit_view(t: torch.Tensor, axis: int) -> torch.Tensor:
    """(units, everything else) view of a weight or mask, units along ``axis``."""
    return t.movedim(axis, 0).reshape(t.shape[axis], -1)


def _columns(group: UnitGroup, consumer, units: torch.Tensor) -> torch.Tensor:
    starts = consumer.offset + units * consumer.block
    return (starts[:, None] + torch.arange(consumer.block)[None, :]).flatten()


def _unit_scores(weights: dict[str, torch.Tensor], mask: Mask, group: UnitGroup) -> tuple[torch.Tensor, torch.Tensor]:
    """(alive, score) per unit: alive if any incoming weight is kept; score = ||incoming|| × ||outgoing|| (L2, kept weights)."""
    w_in = weights[group.producer].detach().float() * mask[group.producer]
    alive = _unit_view(mask[group.producer], group.axis).any(1)
    score_in = _unit_view(w_in, group.axis).norm(dim=1)
    out_sq = torch.zeros(group.size)
    for c in group.consumers:
        w_out = (weights[c.name].detach().float() * mask[c.name]).movedim(c.axis, 0)
        cols = w_out[c.offset : c.offset + group.size * c.block].reshape(group.size, -1)
        out_sq += cols.pow(2).sum(1)
    return alive, score_in * out_sq.sqrt()


def prune_units(
    strategy: str, weights: dict[str, torch.Tensor], mask: Mask, rate: float, units: UnitGraph, gen: torch.Generator
) -> Mask:
    """Remove ``rate`` of the remaining units (at least one unit of every group survives).

    ``layerwise``: the lowest-scoring units of each group, the same fraction per group; ``global``: the lowest
    scores across groups, each score divided by its group's mean so that layers of different scale compete fairly;
    ``random``: random units of each group. A pruned unit loses its incoming slice and its outgoing columns.
    """
    if strategy not in STRATEGIES:
        STRATEGIES.get(strategy)  # the registry's error lists the known names
    alive, scores = {}, {}
    for g in units.groups:
        alive[g.producer], scores[g.producer] = _unit_scores(weights, mask, g)
        if strategy == "random":
            scores[g.producer] = torch.rand(g.size, generator=gen)
    drop: dict[str, torch.Tensor] = {}
    if strategy == "global":
        names = [g.producer for g in units.groups]
        flat, owner, index = [], [], []
        for n in names:
            a = alive[n]
            s = scores[n] / scores[n][a].mean().clamp(min=1e-12) if a.any() else scores[n]
            idx = torch.nonzero(a, as_tuple=True)[0]
            flat.append(s[idx]); owner += [n] * len(idx); index.append(idx)
        flat_t, index_t = torch.cat(flat), torch.cat(index)
        k = _n_prune(len(flat_t), rate)
        left = {n: int(alive[n].sum()) for n in names}
        drop = {n: torch.zeros(units.groups[i].size, dtype=torch.bool) for i, n in enumerate(names)}
        for pos in torch.sort(flat_t, stable=True).indices.tolist():
            if k == 0:
                break
            n = owner[pos]
            if left[n] > 1:
                drop[n][index_t[pos]] = True
                left[n] -= 1
                k -= 1
    else:
        for g in units.groups:
            a = alive[g.producer]
            k = min(_n_prune(int(a.sum()), rate), max(int(a.sum()) - 1, 0))
            keep = _prune_smallest(scores[g.producer], a, k)
            drop[g.producer] = a & ~keep
    new = {n: m.clone() for n, m in mask.items()}
    for g in units.groups:
        gone = torch.nonzero(drop[g.producer], as_tuple=True)[0]
        if len(gone) == 0:
            continue
        new[g.producer].movedim(g.axis, 0)[gone] = False
        for c in g.consumers:
            new[c.name].movedim(c.axis, 0)[_columns(g, c, gone)] = False
    return new
