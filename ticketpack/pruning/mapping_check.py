"""A numeric check of each unit group that Torch-Pruning's graph gives: is what it says consumes a unit really fed
by that unit?

Torch-Pruning maps channels through splits, concatenations and reshapes by index bookkeeping, and that bookkeeping
can be wrong (Torch-Pruning 1.6 pairs the two halves of ``x.chunk(2, dim=1)`` with the wrong consumers), which would
make a pruned unit's consumers read a live channel: masked training would not be what export computes. So, for the
first and last unit of every group, the unit is silenced (every slice that produces it set to zero, as a pruned
unit's are) and the gradient of the logits with respect to the weights said to consume it must be exactly zero:
they multiply an input that is exactly zero. A group that fails is left dense, with the reason.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def misread(model: nn.Module, example: torch.Tensor, group: Any) -> str | None:
    """Why ``group``'s (a :class:`ticketpack.pruning.structure.Group`) mapping does not hold on ``model`` (eval mode), or None when it does."""
    params = dict(model.named_parameters())
    consumers = [s for s in group.slices if s.side == "in" and s.param in params]
    if not consumers:
        return None
    gen = torch.Generator().manual_seed(0)
    frozen = [params[s.param] for s in consumers if not params[s.param].requires_grad]
    for unit in sorted({0, group.size - 1}):
        saved = _silence(params, group, unit)
        for p in frozen:  # a compacted module's weights (export) take no gradient otherwise
            p.requires_grad_(True)
        try:
            with torch.enable_grad():
                logits = model(example)
                probe = torch.rand(logits.shape, generator=gen, dtype=logits.dtype)
                grads = torch.autograd.grad((logits * probe).sum(), [params[s.param] for s in consumers],
                                            allow_unused=True)
        finally:
            _restore(params, saved)
            for p in frozen:
                p.requires_grad_(False)
        for s, grad in zip(consumers, grads):
            if grad is None:
                continue
            rows = grad.movedim(s.axis, 0)[torch.from_numpy(s.index[s.unit == unit])]
            if bool(rows.any()):
                return (f"Torch-Pruning's channel mapping of {group.root}'s units does not hold: {s.param} reads a "
                        f"live channel where it says unit {unit} is (a split, concatenation or reshape it mis-tracks)")
    return None


@torch.no_grad()
def _silence(params: dict[str, nn.Parameter], group: Any, unit: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    saved = []
    for s in group.slices:
        if s.side != "out" or s.param not in params:
            continue
        view = params[s.param].movedim(s.axis, 0)
        idx = torch.from_numpy(s.index[s.unit == unit])
        saved.append((view, idx, view[idx].clone()))
        view[idx] = 0
    return saved


@torch.no_grad()
def _restore(params, saved) -> None:
    for view, idx, values in reversed(saved):
        view[idx] = values
