"""What every ticketpack model shares: prunable weights are found by layer type, the output layer by name."""

from __future__ import annotations

import torch
from torch import nn

from ticketpack.models.spec import ModelSpec

__all__ = ["ModelSpec", "PRUNABLE_TYPES", "TicketModel"]

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding)


class TicketModel(nn.Module):
    """Base class: subclasses build layers in ``__init__`` and set ``output_layer`` to the final layer's name."""

    output_layer: str = "out"
    default_strategy: str = "global"  # pruning strategy used when the user names none

    def prunable_names(self) -> list[str]:
        """Parameter names of the weights a mask may cover (Linear, Conv and Embedding weights; no biases)."""
        return [f"{name}.weight" for name, m in self.named_modules() if isinstance(m, PRUNABLE_TYPES)]

    def output_names(self) -> list[str]:
        return [f"{self.output_layer}.weight"]

    def prunable_parameters(self) -> dict[str, torch.Tensor]:
        params = dict(self.named_parameters())
        return {name: params[name] for name in self.prunable_names()}
