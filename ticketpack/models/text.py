"""Text classifiers over hashed token ids (id 0 is padding).

- ``bow``: embedding of each token, mean over the real (non-padding) tokens, one hidden layer, linear output.
- ``textcnn``: Kim (2014): embeddings, 1-D convolutions of widths 3/4/5, ReLU, max over time, linear output.
"""

from __future__ import annotations

import torch
from torch import nn


class BagOfWords(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, vocab_size: int, embed_dim: int = 64,
                 hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.fc = nn.Linear(embed_dim, hidden)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, ids):
        # the padding row (id 0) is zero and stays zero (padding_idx: no gradient, and masks keep zeros), so a plain
        # sum over the tokens is the sum over the real ones: no (batch, tokens, dim) multiply in the graph
        count = (ids > 0).to(torch.float32).sum(1, keepdim=True).clamp(min=1.0)  # ids are >= 0: one Greater, float sums
        mean = self.embed(ids).sum(1) / count
        return self.out(self.fc(mean).relu())


class TextCNN(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, vocab_size: int, embed_dim: int = 64,
                 filters: int = 32, widths: list[int] | None = None, dropout: float = 0.5) -> None:
        super().__init__()
        widths = list(widths or [3, 4, 5])
        if input_shape[0] < max(widths):
            raise ValueError(f"textcnn needs max_tokens >= {max(widths)}")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, filters, w) for w in widths)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(filters * len(widths), num_classes)

    def forward(self, ids):
        x = self.embed(ids).transpose(1, 2)  # (N, E, T)
        pooled = [conv(x).relu().amax(dim=2) for conv in self.convs]
        return self.out(self.dropout(torch.cat(pooled, dim=1)))
