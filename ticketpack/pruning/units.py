"""Which weight slices make up one unit (a hidden neuron, a conv channel, an embedding dimension), per architecture.

A *unit group* is a layer whose output units feed later layers: unit ``j`` owns slice ``j`` of the producer's
weight along ``axis`` (its incoming weights) and some columns of each consumer's weight (its outgoing weights).
Neuron-granularity pruning removes whole units (both sides), and exact compaction at export drops units whose
incoming or outgoing weights are all zero. *Input groups* are the input features of the first layer (pixels of
an MLP, rows of an embedding table): compaction may drop them too, with a gather or an id remap in the graph.

Torch-free: the shapes and names come from a built model, the logic works on any tensors or arrays.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

from ticketpack.errors import TicketpackError


@dataclass(frozen=True)
class Consumer:
    """Where unit ``j`` of a group feeds: columns ``offset + j*block ... offset + (j+1)*block - 1`` of ``name`` on ``axis``.

    ``foldable``: a unit that outputs a constant ``c`` can be removed exactly by adding ``c × (its columns summed)``
    to this consumer's bias (true for linear layers and unpadded convolutions; false for padded convolutions,
    whose border outputs see fewer taps).
    """

    name: str
    axis: int
    bias: str
    offset: int = 0
    block: int = 1
    foldable: bool = True


@dataclass(frozen=True)
class UnitGroup:
    producer: str
    axis: int
    size: int
    bias: str | None
    activation: Literal["relu", "none"]
    consumers: tuple[Consumer, ...]


@dataclass(frozen=True)
class InputGroup:
    """Input features of the first layer: ``kind`` "features" (flattened input, gathered) or "vocabulary" (embedding rows, remapped ids)."""

    name: str
    axis: int
    kind: Literal["features", "vocabulary"]


@dataclass(frozen=True)
class UnitGraph:
    groups: tuple[UnitGroup, ...]
    inputs: tuple[InputGroup, ...] = field(default_factory=tuple)

    def consumers_of(self, name: str) -> list[tuple[int, Consumer]]:
        return [(i, c) for i, g in enumerate(self.groups) for c in g.consumers if c.name == name]


SUPPORTED = ("lenet-300-100", "convnet", "bow", "textcnn")


def unit_graph(model) -> UnitGraph:
    """The unit structure of a built ticketpack model (``TicketpackError`` for architectures it does not know)."""
    from ticketpack.models.conv import ConvNet
    from ticketpack.models.mlp import MLP
    from ticketpack.models.text import BagOfWords, TextCNN

    if isinstance(model, MLP):
        names = [f"hidden.{i}" for i in range(len(model.hidden))] + ["out"]
        groups = tuple(
            UnitGroup(f"{a}.weight", 0, model.hidden[i].out_features, f"{a}.bias", "relu",
                      (Consumer(f"{b}.weight", 1, f"{b}.bias"),))
            for i, (a, b) in enumerate(itertools.pairwise(names))
        )
        return UnitGraph(groups, (InputGroup("hidden.0.weight", 1, "features"),))
    if isinstance(model, BagOfWords):
        return UnitGraph(
            (
                UnitGroup("embed.weight", 1, model.embed.embedding_dim, None, "none", (Consumer("fc.weight", 1, "fc.bias"),)),
                UnitGroup("fc.weight", 0, model.fc.out_features, "fc.bias", "relu", (Consumer("out.weight", 1, "out.bias"),)),
            ),
            (InputGroup("embed.weight", 0, "vocabulary"),),
        )
    if isinstance(model, ConvNet):
        pooled = model.fc.in_features // model.conv2.out_channels
        return UnitGraph(
            (
                UnitGroup("conv1.weight", 0, model.conv1.out_channels, "conv1.bias", "relu",
                          (Consumer("conv2.weight", 1, "conv2.bias", foldable=False),)),
                UnitGroup("conv2.weight", 0, model.conv2.out_channels, "conv2.bias", "relu",
                          (Consumer("fc.weight", 1, "fc.bias", block=pooled),)),
                UnitGroup("fc.weight", 0, model.fc.out_features, "fc.bias", "relu", (Consumer("out.weight", 1, "out.bias"),)),
            )
        )
    if isinstance(model, TextCNN):
        convs = [f"convs.{i}" for i in range(len(model.convs))]
        embed = UnitGroup(
            "embed.weight", 1, model.embed.embedding_dim, None, "none",
            tuple(Consumer(f"{c}.weight", 1, f"{c}.bias") for c in convs),
        )
        filters = [m.out_channels for m in model.convs]
        per_conv = tuple(
            UnitGroup(f"{c}.weight", 0, filters[i], f"{c}.bias", "relu",
                      (Consumer("out.weight", 1, "out.bias", offset=sum(filters[:i])),))
            for i, c in enumerate(convs)
        )
        return UnitGraph((embed, *per_conv), (InputGroup("embed.weight", 0, "vocabulary"),))
    raise TicketpackError(
        f"neuron granularity does not know the units of {type(model).__name__}; supported models: {', '.join(SUPPORTED)}"
    )


def consumer_columns(group: UnitGroup, consumer: Consumer, unit: int) -> range:
    start = consumer.offset + unit * consumer.block
    return range(start, start + consumer.block)
