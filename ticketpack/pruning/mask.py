"""A mask is a plain ``{parameter name: bool tensor}`` mapping: True keeps a weight, False prunes it."""

from __future__ import annotations

import torch
from torch import nn

from ticketpack.core.errors import TicketpackError
from ticketpack.models.swap import replace_module
from ticketpack.models.tensors import tensors_digest

Mask = dict[str, torch.Tensor]


def ones_like(params: dict[str, torch.Tensor]) -> Mask:
    """The dense mask over ``params`` (name → weight): every weight kept."""
    return {name: torch.ones_like(p, dtype=torch.bool) for name, p in params.items()}


@torch.no_grad()
def apply_mask(model: nn.Module, mask: Mask) -> None:
    """Zero every pruned weight in place, and run the layers that compute differently under a mask in their masked
    form (:func:`bind_layers`)."""
    params = dict(model.named_parameters())
    for name, m in mask.items():
        params[name].mul_(m.to(params[name].dtype))
    bind_layers(model, mask)


def bind_layers(model: nn.Module, mask: Mask) -> int:
    """Replace, in place, each layer whose registered type computes differently while ``mask`` prunes some of its
    units (a LayerNorm then normalizes over its live units only: :mod:`ticketpack.pruning.norms`); a layer replaced
    for an earlier mask is updated to this one. Return how many layers were replaced."""
    from ticketpack.pruning.layers import layer_type

    done = 0
    for name, module in list(model.named_modules()):
        lt = layer_type(module)
        new = None if lt is None else lt.under_mask(module, name, mask)
        if new is not None:
            replace_module(model, name, new)
            done += 1
    return done


def remaining(mask: Mask) -> int:
    return int(sum(int(torch.count_nonzero(m)) for m in mask.values()))  # faster than a bool sum() on CPU


def total(mask: Mask) -> int:
    return int(sum(m.numel() for m in mask.values()))


def density(mask: Mask) -> float:
    """Fraction of prunable weights kept (1.0 = dense)."""
    return remaining(mask) / max(total(mask), 1)


def layer_density(mask: Mask) -> dict[str, float]:
    return {name: float(m.float().mean()) for name, m in mask.items()}


def digest(mask: Mask) -> str:
    """sha256 of the mask's content: the same mask always has the same hash."""
    return tensors_digest({k: v.to(torch.uint8) for k, v in mask.items()})


def to_file(mask: Mask) -> dict[str, torch.Tensor]:
    return {k: v.to(torch.uint8) for k, v in mask.items()}


def from_file(tensors: dict[str, torch.Tensor]) -> Mask:
    for name, t in tensors.items():
        if t.dtype != torch.uint8 or bool((t > 1).any()):
            raise TicketpackError(f"mask tensor {name} is not a 0/1 uint8 tensor")
    return {k: v.bool() for k, v in tensors.items()}


def random_like(mask: Mask, generator: torch.Generator) -> Mask:
    """A random mask with exactly the same number of kept weights in every layer as ``mask``."""
    out: Mask = {}
    for name in sorted(mask):
        m = mask[name]
        keep = int(torch.count_nonzero(m))
        order = torch.randperm(m.numel(), generator=generator)
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        flat[order[:keep]] = True
        out[name] = flat.view_as(m)
    return out
