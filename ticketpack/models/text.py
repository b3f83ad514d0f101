"""Text classifiers over hashed token ids (id 0 is padding).

- ``bow``: embedding of each token, mean over the real (non-padding) tokens, one hidden layer, linear output.
- ``textcnn``: Kim (2014): embeddings, 1-D convolutions of widths 3/4/5, ReLU, max over time, linear output.
"""

from __future__ import annotations

import torch
from torch import nn

from ticketpack.models.base import TicketModel


class BagOfWords(TicketModel):
    output_layer = "out"
    default_strategy = "layerwise"  # global magnitude would rank N(0,1) embeddings above the small dense layers

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, vocab_size: int, embed_dim: int = 64,
                 hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.fc = nn.Linear(embed_dim, hidden)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, ids):
        present = (ids != 0).unsqueeze(-1).to(torch.float32)
        summed = (self.embed(ids) * present).sum(1)
        mean = summed / present.sum(1).clamp(min=1.0)
        return self.out(self.fc(mean).relu())


class TextCNN(TicketModel):
    output_layer = "out"
    default_strategy = "layerwise"

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
