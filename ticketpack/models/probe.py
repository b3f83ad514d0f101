"""One forward pass of a model, in eval mode and without gradients, with hooks that are removed afterwards."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def run_hooked(model: nn.Module, example: torch.Tensor, handles: Iterable[RemovableHandle]) -> torch.Tensor:
    """Run ``model`` on ``example`` (eval mode, no grad; the training mode is restored), then remove ``handles``."""
    handles = list(handles)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(example)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
