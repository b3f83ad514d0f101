"""Pruning strategies: each turns (trained weights, current mask) into a sparser mask.

Every strategy removes ``rate`` of the weights that are still kept; the output layer is pruned on its own at
``output_rate`` (Frankle & Carbin prune it at half the rate of the rest).

- ``global``: the smallest-magnitude kept weights across all hidden layers together.
- ``layerwise``: the smallest-magnitude kept weights of each layer, the same fraction per layer.
- ``random``: random kept weights of each layer, the same fraction per layer (a baseline, not a ticket).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ticketpack.pruning.mask import Mask
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
) -> Mask:
    """Apply ``strategy`` to the hidden layers at ``rate`` and to the output layer(s) at ``output_rate``."""
    fn = STRATEGIES.get(strategy)
    hidden = {n: m for n, m in mask.items() if n not in output_names}
    output = {n: m for n, m in mask.items() if n in output_names}
    new = fn(weights, hidden, rate, generator) if hidden else {}
    if output:
        new.update(fn(weights, output, output_rate, generator))
    return {n: new[n] for n in mask}
