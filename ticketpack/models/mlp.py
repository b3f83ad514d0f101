"""``lenet-300-100``: the fully connected network of the original Lottery Ticket paper (Frankle & Carbin 2019)."""

from __future__ import annotations

import math

from torch import nn


class MLP(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: list[int] | None = None) -> None:
        super().__init__()
        hidden = list(hidden or [300, 100])
        sizes = [math.prod(input_shape), *hidden]
        self.flatten = nn.Flatten()
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(sizes[-1], num_classes)

    def forward(self, x):
        x = self.flatten(x)
        for layer in self.hidden:
            x = layer(x).relu()
        return self.out(x)
