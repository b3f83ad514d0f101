"""Pruning strategies: each turns (trained weights, current mask) into a sparser mask.

Every strategy removes ``rate`` of the weights that are still kept; the output layer is pruned on its own at
``output_rate`` (Frankle & Carbin prune it at half the rate of the rest).

- ``global``: the smallest-magnitude kept weights across all hidden layers together.
- ``layerwise``: the smallest-magnitude kept weights of each layer, the same fraction per layer.
- ``random``: random kept weights of each layer, the same fraction per layer (a baseline, not a ticket).

With ``granularity="neuron"`` the same three names remove whole units instead of single weights (hidden neurons,
conv channels, embedding dimensions; see ``ticketpack.pruning.structure``): ``rate`` of the remaining units, each
unit's incoming and outgoing weights together, so that export can compact the ticket into smaller dense layers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ticketpack.pruning.mask import Mask
from ticketpack.pruning.structure import Group, Structure, per_unit, set_units
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
    structure: Structure | None = None,
) -> Mask:
    """Apply ``strategy`` to the hidden layers at ``rate`` and to the output layer(s) at ``output_rate``.

    ``granularity="neuron"`` prunes whole units of ``structure``'s groups instead (``output_rate`` does not apply:
    the output layer loses only the columns of pruned units).
    """
    if granularity == "neuron":
        if structure is None:
            raise ValueError("neuron granularity needs the model's structure (ticketpack.pruning.structure.trace)")
        return prune_units(strategy, weights, mask, rate, structure, generator)
    fn = STRATEGIES.get(strategy)
    hidden = {n: m for n, m in mask.items() if n not in output_names}
    output = {n: m for n, m in mask.items() if n in output_names}
    new = fn(weights, hidden, rate, generator) if hidden else {}
    if output:
        new.update(fn(weights, output, output_rate, generator))
    return {n: new[n] for n in mask}


# ---------------------------------------------------------------- neuron granularity


def _unit_scores(kept: dict[str, torch.Tensor], mask: Mask, group: Group) -> tuple[torch.Tensor, torch.Tensor]:
    """(alive, score) per unit: alive if any weight it produces with is kept; score = ||incoming|| × ||outgoing||
    (L2 over the kept weights ``kept`` of every slice of the group; a group with no consumer weights scores on
    incoming)."""
    alive = per_unit(mask, group, "out", "any")
    score = per_unit(kept, group, "out", "sumsq").sqrt()
    if group.params("in"):
        score = score * per_unit(kept, group, "in", "sumsq").sqrt()
    return alive, score.float()


def prune_units(
    strategy: str, weights: dict[str, torch.Tensor], mask: Mask, rate: float, structure: Structure, gen: torch.Generator
) -> Mask:
    """Remove ``rate`` of the remaining units (at least one unit of every group survives).

    ``layerwise``: the lowest-scoring units of each group, the same fraction per group; ``global``: the lowest
    scores across groups, each score divided by its group's mean so that layers of different scale compete fairly;
    ``random``: random units of each group. A pruned unit loses every weight slice of its group.
    """
    if strategy not in STRATEGIES:
        STRATEGIES.get(strategy)  # the registry's error lists the known names
    groups = structure.groups
    kept = {n: weights[n].detach().float() * mask[n] for n in mask}
    alive, scores = {}, {}
    for i, g in enumerate(groups):
        alive[i], scores[i] = _unit_scores(kept, mask, g)
        if strategy == "random":
            scores[i] = torch.rand(g.size, generator=gen)
    drop: dict[int, torch.Tensor] = {}
    if strategy == "global":
        flat, owner, index = [], [], []
        for i in range(len(groups)):
            a = alive[i]
            s = scores[i] / scores[i][a].mean().clamp(min=1e-12) if a.any() else scores[i]
            idx = torch.nonzero(a, as_tuple=True)[0]
            flat.append(s[idx]); owner += [i] * len(idx); index.append(idx)
        flat_t = torch.cat(flat) if flat else torch.zeros(0)
        index_t = torch.cat(index) if index else torch.zeros(0, dtype=torch.long)
        k = _n_prune(len(flat_t), rate)
        left = {i: int(alive[i].sum()) for i in range(len(groups))}
        drop = {i: torch.zeros(g.size, dtype=torch.bool) for i, g in enumerate(groups)}
        for pos in torch.sort(flat_t, stable=True).indices.tolist():
            if k == 0:
                break
            i = owner[pos]
            if left[i] > 1:
                drop[i][index_t[pos]] = True
                left[i] -= 1
                k -= 1
    else:
        for i in range(len(groups)):
            a = alive[i]
            k = min(_n_prune(int(a.sum()), rate), max(int(a.sum()) - 1, 0))
            keep = _prune_smallest(scores[i], a, k)
            drop[i] = a & ~keep
    new = {n: m.clone() for n, m in mask.items()}
    for i, g in enumerate(groups):
        gone = torch.nonzero(drop[i], as_tuple=True)[0]
        if len(gone):
            set_units(new, g, gone, False)
    return new
