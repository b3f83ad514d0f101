"""Which weights a mask covers, found by module type on any ``nn.Module``, and which layer is the output layer.

Prunable: the weight of every ``Linear``, ``Conv1d``, ``Conv2d`` and ``Embedding``, and the input projection of
every ``MultiheadAttention`` (its output projection is a ``Linear``): the ``weights`` of each module's registered
layer type (:mod:`ticketpack.pruning.layers`, where a user registers their own). Biases and norms are never pruned
at weight granularity. ``include`` / ``exclude`` are glob patterns over parameter names (``fnmatch``), applied in
that order.

The output layer (which may have its own prune rate) is the prunable layer that produces the model's output:
found by running an example batch with forward hooks, or named explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

import torch
from torch import nn

from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.models.probe import run_hooked
from ticketpack.pruning.layers import layer_type

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding)  # the built-in layers whose weight is prunable


def _weights_of(name: str, module: nn.Module) -> list[str]:
    prefix = f"{name}." if name else ""
    lt = layer_type(module)
    return [] if lt is None else [prefix + w for w in lt.prunable(module)]


def _has_weights(module: nn.Module) -> bool:
    lt = layer_type(module)
    return lt is not None and bool(lt.weights)


def candidate_names(model: nn.Module) -> list[str]:
    """Every weight of a prunable layer type, in module order."""
    params = dict(model.named_parameters())
    return [n for name, m in model.named_modules() for n in _weights_of(name, m) if n in params]


def prunable_names(model: nn.Module, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[str]:
    """The weights a mask covers: candidates matching any ``include`` pattern (all when none) and no ``exclude``."""
    names = candidate_names(model)
    for pattern in [*include, *exclude]:
        if not any(fnmatchcase(n, pattern) for n in names):
            raise TicketpackError(f"prune pattern {pattern!r} matches no prunable weight; prunable: {', '.join(names)}")
    if include:
        names = [n for n in names if any(fnmatchcase(n, p) for p in include)]
    names = [n for n in names if not any(fnmatchcase(n, p) for p in exclude)]
    if not names:
        raise FieldError("no prunable weight left after `prune.include`/`prune.exclude`")
    return names


def output_layer(model: nn.Module, example: torch.Tensor) -> str:
    """The module name of the last prunable layer whose output feeds the model's output.

    The layer whose output tensor *is* the model's output wins; otherwise (a reshape or an op after it) the last
    prunable layer called whose last output dimension equals the number of classes, then (a convolutional head:
    conv → ReLU → pool, as SqueezeNet's) the last whose channel dimension does.
    """
    calls: list[tuple[str, torch.Tensor]] = []

    def hook(name: str):
        return lambda _m, _inp, out: calls.append((name, out[0] if isinstance(out, tuple) else out))

    logits = run_hooked(model, example, [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
                                         if _has_weights(m)])
    for name, out in reversed(calls):
        if out is logits:
            return name
    classes = logits.shape[-1]
    tensors = [(name, out) for name, out in reversed(calls) if isinstance(out, torch.Tensor)]
    for dim in (-1, 1):
        for name, out in tensors:
            if out.dim() > max(dim, 0) and out.shape[dim] == classes:
                return name
    last = (f"; the last layer with weights, {tensors[0][0]!r}, outputs shape {tuple(tensors[0][1].shape)}"
            if tensors else "")
    raise FieldError(f"cannot tell which layer produces the model's output ({classes} classes): none of its layers "
                     f"outputs {classes} features or channels{last}; name it with `prune.output_layer`",
                     fields=["prune.output_layer"])


def output_weights(model: nn.Module, layer: str, prunable: Sequence[str]) -> list[str]:
    """The prunable weights of module ``layer``."""
    modules = dict(model.named_modules())
    if layer not in modules:
        raise FieldError(f"`prune.output_layer` {layer!r} is not a module of the model", fields=["prune.output_layer"])
    return [n for n in _weights_of(layer, modules[layer]) if n in prunable]


def parameters(model: nn.Module, names: Sequence[str]) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {n: params[n] for n in names}
