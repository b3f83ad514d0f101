"""Four models ticketpack has never seen: ordinary user code, importing nothing from ticketpack.

Each factory takes ``input_shape`` and ``num_classes`` (plus ``vocab_size`` for text) and keyword options, and
returns an ``nn.Module`` whose forward maps a batch of inputs to ``(batch, num_classes)`` logits:

    ticketpack search --model examples/custom_models/models.py:resnet --model-options '{"width": 16}'
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Block(nn.Module):
    """A basic residual block: conv-BN-ReLU-conv-BN, plus the input (through a 1x1 conv when the width changes)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Identity() if c_in == c_out else nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = self.bn1(self.conv1(x)).relu()
        return (self.bn2(self.conv2(y)) + self.skip(x)).relu()


class ResNet(nn.Module):
    """A small residual CNN for images: a stem, ``blocks`` residual blocks, global average pooling, a linear head."""

    def __init__(self, input_shape, num_classes: int, width: int = 32, blocks: int = 2) -> None:
        super().__init__()
        c = input_shape[0]
        self.stem = nn.Sequential(nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(*[Block(width if i else width, width) for i in range(blocks)])
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))


def resnet(input_shape, num_classes: int, width: int = 32, blocks: int = 2) -> nn.Module:
    return ResNet(input_shape, num_classes, width, blocks)


class EncoderLayer(nn.Module):
    """Transformer encoder layer: multi-head self-attention and a ReLU feed-forward, each with LayerNorm; post-norm
    (``norm(x + f(x))``) by default, pre-norm (``x + f(norm(x))``) with ``norm_first``."""

    def __init__(self, dim: int, heads: int, ff: int, dropout: float, norm_first: bool = False) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, ff)
        self.ff2 = nn.Linear(ff, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, pad):
        if self.norm_first:
            y = self.norm1(x)
            a, _ = self.attn(y, y, y, key_padding_mask=pad, need_weights=False)
            x = x + self.drop(a)
            return x + self.drop(self.ff2(self.ff1(self.norm2(x)).relu()))
        a, _ = self.attn(x, x, x, key_padding_mask=pad, need_weights=False)
        x = self.norm1(x + self.drop(a))
        return self.norm2(x + self.drop(self.ff2(self.ff1(x).relu())))


class Transformer(nn.Module):
    """Token and position embeddings, ``layers`` encoder layers, mean pooling over real tokens, a linear head.

    ``norm_first``: pre-norm layers, and a final LayerNorm before the pooling. ``embed_scale``: the factor on the
    token embeddings (default ``sqrt(dim)``)."""

    def __init__(self, input_shape, num_classes: int, vocab_size: int, dim: int = 64, heads: int = 4,
                 layers: int = 2, ff: int = 128, dropout: float = 0.1, norm_first: bool = False,
                 embed_scale: float | None = None) -> None:
        super().__init__()
        max_len = input_shape[0]
        self.tokens = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.positions = nn.Embedding(max_len, dim)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, ff, dropout, norm_first) for _ in range(layers))
        self.norm = nn.LayerNorm(dim) if norm_first else None
        self.head = nn.Linear(dim, num_classes)
        self.scale = math.sqrt(dim) if embed_scale is None else float(embed_scale)

    def forward(self, ids):
        pad = ids == 0
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.tokens(ids) * self.scale + self.positions(pos)
        for layer in self.layers:
            x = layer(x, pad)
        if self.norm is not None:
            x = self.norm(x)
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.head(pooled)


def transformer(input_shape, num_classes: int, vocab_size: int, dim: int = 64, heads: int = 4, layers: int = 2,
                ff: int = 128, dropout: float = 0.1, norm_first: bool = False, embed_scale: float | None = None) -> nn.Module:
    return Transformer(input_shape, num_classes, vocab_size, dim, heads, layers, ff, dropout, norm_first, embed_scale)


class Branches(nn.Module):
    """Two parallel branches over the flattened image (a wide ReLU one and a narrow tanh one), concatenated."""

    def __init__(self, input_shape, num_classes: int, wide: int = 128, narrow: int = 32) -> None:
        super().__init__()
        features = math.prod(input_shape)
        self.left = nn.Linear(features, wide)
        self.right = nn.Linear(features, narrow)
        self.mix = nn.Linear(wide + narrow, 64)
        self.head = nn.Linear(64, num_classes)

    def forward(self, x):
        x = x.flatten(1)
        y = torch.cat([self.left(x).relu(), self.right(x).tanh()], dim=1)
        return self.head(self.mix(y).relu())


def branches(input_shape, num_classes: int, wide: int = 128, narrow: int = 32) -> nn.Module:
    return Branches(input_shape, num_classes, wide, narrow)


class ViTLayer(nn.Module):
    """Pre-norm encoder layer of ``torchvision.models.VisionTransformer``: LayerNorm, self-attention, residual;
    LayerNorm, GELU MLP, residual."""

    def __init__(self, dim: int, heads: int, mlp: int, dropout: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp, dim), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = x + self.drop(y)
        return x + self.mlp(self.ln_2(x))


class ViT(nn.Module):
    """A Vision Transformer shaped like ``torchvision.models.VisionTransformer``, in plain torch: a patch projection
    (a strided convolution), a class token and position embeddings (bare parameters), ``layers`` pre-norm encoder
    layers, a final LayerNorm, and a linear head on the class token."""

    def __init__(self, input_shape, num_classes: int, patch: int = 4, dim: int = 64, heads: int = 4, layers: int = 2,
                 mlp: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        c, h, w = input_shape
        if h % patch or w % patch:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {patch}")
        self.patch = patch
        self.conv_proj = nn.Conv2d(c, dim, patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.empty(1, (h // patch) * (w // patch) + 1, dim).normal_(std=0.02))
        self.layers = nn.Sequential(*[ViTLayer(dim, heads, mlp, dropout) for _ in range(layers)])
        self.ln = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.conv_proj(x).flatten(2).transpose(1, 2)  # (N, patches, dim)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embedding
        return self.head(self.ln(self.layers(x))[:, 0])


def vit(input_shape, num_classes: int, patch: int = 4, dim: int = 64, heads: int = 4, layers: int = 2, mlp: int = 128,
        dropout: float = 0.0) -> nn.Module:
    return ViT(input_shape, num_classes, patch, dim, heads, layers, mlp, dropout)
