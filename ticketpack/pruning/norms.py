"""A LayerNorm that normalizes over its live units only: what a pruned residual width needs to compact exactly.

A Transformer's residual width passes through every LayerNorm. When a mask prunes some of its units, their values
are zero, but a plain LayerNorm still counts them in its mean and variance, so removing them at export would change
what the live units compute. While a mask prunes some of its units, a LayerNorm is therefore replaced by a
:class:`LiveLayerNorm` (same parameters, same names; :func:`ticketpack.pruning.mask.bind_layers`): its statistics
are taken over the live units, the pruned ones output zero (their weight and bias are masked), and the compacted
LayerNorm over the kept units computes the same numbers up to float rounding.
"""

from __future__ import annotations

import torch
from torch import nn

from ticketpack.models.swap import replace_module


class LiveLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the last dimension whose mean and variance count only the units ``live`` marks.

    It shares the parameters of the LayerNorm it replaces (same names in the state dict); ``live`` is a buffer that
    is not saved (the mask it comes from is).
    """

    def __init__(self, norm: nn.LayerNorm, live: torch.Tensor) -> None:
        super().__init__(norm.normalized_shape, eps=norm.eps, elementwise_affine=True, bias=norm.bias is not None,
                         device=norm.weight.device, dtype=norm.weight.dtype)
        self.weight = norm.weight
        self.bias = norm.bias
        self.register_buffer("live", live.to(device=norm.weight.device, dtype=torch.bool).clone(), persistent=False)
        self.train(norm.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.live.to(torch.float32)
        k = m.sum().clamp(min=1.0)
        xf = x.float()
        centered = (xf - (xf * m).sum(-1, keepdim=True) / k) * m
        var = (centered * centered).sum(-1, keepdim=True) / k
        y = centered * torch.rsqrt(var + self.eps) * self.weight.float()
        if self.bias is not None:
            y = y + self.bias.float()
        return y.to(x.dtype)

    def set_live(self, live: torch.Tensor) -> None:
        self.live = live.to(device=self.live.device, dtype=torch.bool).clone()

    def plain(self) -> nn.LayerNorm | None:
        """The plain ``nn.LayerNorm`` with these parameters when every unit is live (after compaction), else None."""
        if not bool(self.live.all()):
            return None
        norm = nn.LayerNorm(self.normalized_shape, eps=self.eps, bias=self.bias is not None,
                            device=self.weight.device, dtype=self.weight.dtype)
        norm.weight, norm.bias = self.weight, self.bias
        return norm.train(self.training)


def plain_norms(model: nn.Module) -> int:
    """Replace, in place, every :class:`LiveLayerNorm` whose units are all live by a plain ``nn.LayerNorm`` (one
    fused op in ONNX instead of eight); return how many were replaced."""
    done = 0
    for name, m in list(model.named_modules()):
        if isinstance(m, LiveLayerNorm) and (norm := m.plain()) is not None:
            replace_module(model, name, norm)
            done += 1
    return done


__all__ = ["LiveLayerNorm", "plain_norms"]
