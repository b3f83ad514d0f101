"""Multiply-accumulates per example of each prunable layer, measured on any model by forward hooks.

A layer's cost is its weight's size times the positions it is applied at (1 for a linear layer on a vector,
the tokens of a sequence, the output pixels of a convolution); an embedding costs one addition per token and
dimension. Pruned weights scale that cost by the layer's density: the physical reference for speed-ups.
"""

from __future__ import annotations

import torch
from torch import nn

from ticketpack.models.probe import run_hooked
from ticketpack.pruning.targets import LAYER_TYPES


def layer_macs(model: nn.Module, example: torch.Tensor, prunable: list[str]) -> dict[str, int]:
    """``{weight name: MACs per example}`` for the prunable weights of the layers the forward calls."""
    modules = {n: m for n, m in model.named_modules() if isinstance(m, (*LAYER_TYPES, nn.MultiheadAttention))}
    seen: dict[str, int] = {}
    batch = example.shape[0]

    def hook(name: str, module: nn.Module):
        def fn(_m, inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            if isinstance(module, nn.Embedding):
                seen[f"{name}.weight"] = out.numel() // batch
                return
            if isinstance(module, nn.MultiheadAttention):
                x = inputs[0]
                tokens = x.numel() // batch // x.shape[-1]
                for p in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
                    w = getattr(module, p, None)
                    if w is not None:
                        seen[f"{name}.{p}"] = tokens * w.numel()
                o = module.out_proj.weight
                seen[f"{name}.out_proj.weight"] = tokens * o.numel()
                return
            channels = module.weight.shape[0]
            positions = out.numel() // batch // channels
            seen[f"{name}.weight"] = positions * module.weight.numel()
        return fn

    run_hooked(model, example, [m.register_forward_hook(hook(n, m)) for n, m in modules.items()])
    return {n: seen[n] for n in prunable if n in seen}
