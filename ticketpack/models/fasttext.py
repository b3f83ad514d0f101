"""fastText-style text classifier (Joulin et al., 2017) over hashed word n-gram ids; id 0 is padding.

The document vector is the mean of the embeddings of its non-padding ids. ``nn.Embedding(padding_idx=0)`` keeps
row 0 at zero, so the exported graph just sums all rows of the padded ids and divides by the number of nonzero
ids (no mask multiply; in ONNX that is Gather → ReduceSum, and Greater → Cast → ReduceSum → Clip → Div). In
PyTorch the same sums are taken over the non-padding ids only (:meth:`FastText._bag`), which is what a training
step costs. An optional hidden layer (ReLU) and dropout follow, then a linear output layer.

Embeddings start at zero (``init="zero"``, the default): an id never seen in training then stays exactly zero, as
an unseen feature has zero weight in a linear model, instead of adding random noise to a test document. With a
hidden layer the gradient still reaches them through its random weights; without one, through the output layer's.

``token_dropout`` drops whole ids (they become padding) while training, a strong regularizer for a bag of n-grams
on a few thousand reviews; in eval mode (and so in an exported graph) it does nothing. ``sparse=True`` gives the
embedding sparse gradients, which ticketpack's trainer updates row by row (lazy Adam) instead of a dense Adam step
over every row of a 2^20-row table. ``pool="sqrt"`` divides the sum by sqrt(count) instead.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


class FastText(nn.Module):
    """``FastText(input_shape, num_classes, vocab_size, **options)``; input int64 ids (batch, max_tokens)."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        vocab_size: int,
        embed_dim: int = 16,
        hidden: int = 0,
        dropout: float = 0.0,
        init: Literal["zero", "uniform", "normal"] = "zero",
        sparse: bool = True,
        pool: Literal["mean", "sqrt"] = "mean",
        token_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if embed_dim < 1 or hidden < 0 or not 0.0 <= dropout < 1.0 or not 0.0 <= token_dropout < 1.0:
            raise ValueError("fasttext needs embed_dim >= 1, hidden >= 0, 0 <= dropout < 1 and 0 <= token_dropout < 1")
        if init not in ("zero", "uniform", "normal"):
            raise ValueError(f"fasttext init must be zero, uniform or normal, not {init!r}")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0, sparse=sparse)
        with torch.no_grad():
            if init == "zero":
                self.embed.weight.zero_()
            elif init == "uniform":
                self.embed.weight.uniform_(-1.0 / embed_dim, 1.0 / embed_dim)
            self.embed.weight[0].zero_()
        if pool not in ("mean", "sqrt"):
            raise ValueError(f"fasttext pool must be mean or sqrt, not {pool!r}")
        self.pool = pool
        self.token_dropout = token_dropout
        self.hidden = nn.Linear(embed_dim, hidden) if hidden else None
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden or embed_dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():  # the exported graph: Gather → ReduceSum
            summed = self.embed(ids).sum(1)
            count = (ids > 0).to(summed.dtype).sum(1, keepdim=True)  # ids are >= 0: one Greater, float sums
        else:
            summed, count = self._bag(ids)
        count = count.clamp(min=1.0)
        h = summed / (count if self.pool == "mean" else count.sqrt())
        if self.hidden is not None:
            h = self.hidden(self.dropout(h)).relu()
        return self.out(self.dropout(h))

    def _bag(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each document's sum of rows and number of ids, over its non-padding ids only: the sums of the exported
        Gather → ReduceSum without gathering the padding that fills a batch up to ``max_tokens`` (a review has
        ~500 ids of the default 8192), so a training step's sparse gradient holds only the rows used. Token dropout
        drops ids here, in training only. The embedding module is still what is called, so hooks and module swaps
        (export's compaction) see it."""
        doc, col = (ids > 0).nonzero(as_tuple=True)
        flat = ids[doc, col]
        if self.training and self.token_dropout > 0:
            keep = torch.rand(flat.shape, device=flat.device) >= self.token_dropout
            doc, flat = doc[keep], flat[keep]
        rows = self.embed(flat)
        summed = torch.zeros(ids.shape[0], rows.shape[1], dtype=rows.dtype, device=rows.device).index_add_(0, doc, rows)
        count = torch.bincount(doc, minlength=ids.shape[0]).to(rows.dtype).unsqueeze(1)
        return summed, count
