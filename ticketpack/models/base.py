"""What every ticketpack model shares: prunable weights are found by layer type, the output layer by name."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding)


class ModelSpec(BaseModel):
    """A model by registry name plus its width options, e.g. ``lenet-300-100`` with ``{"hidden": [300, 100]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Registry name of the architecture (see `ticketpack.models.names()`).")
    options: dict[str, Any] = Field(default_factory=dict, description="Width/shape options of the architecture.")


class TicketModel(nn.Module):
    """Base class: subclasses build layers in ``__init__`` and set ``output_layer`` to the final layer's name."""

    output_layer: str = "out"

    def prunable_names(self) -> list[str]:
        """Parameter names of the weights a mask may cover (Linear, Conv and Embedding weights; no biases)."""
        return [f"{name}.weight" for name, m in self.named_modules() if isinstance(m, PRUNABLE_TYPES)]

    def output_names(self) -> list[str]:
        return [f"{self.output_layer}.weight"]

    def prunable_parameters(self) -> dict[str, torch.Tensor]:
        params = dict(self.named_parameters())
        return {name: params[name] for name in self.prunable_names()}
