"""``convnet``: a small image conv net (two 3×3 conv layers, one max-pool, two linear layers)."""

from __future__ import annotations

from torch import nn


class ConvNet(nn.Module):
    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, channels: list[int] | None = None, hidden: int = 64
    ) -> None:
        super().__init__()
        c1, c2 = channels or [16, 32]
        in_ch, h, w = input_shape
        self.conv1 = nn.Conv2d(in_ch, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(c2 * (h // 2) * (w // 2), hidden)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = self.conv1(x).relu()
        x = self.pool(self.conv2(x).relu())
        return self.out(self.fc(x.flatten(1)).relu())
