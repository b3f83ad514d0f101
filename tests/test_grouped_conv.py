"""Grouped convolutions prune by group (issue 24): a unit is one place in every group of the convolution, so each
group keeps as many channels, and compaction cuts whole weight columns (input side) and rows (output side)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ticketpack.export.compact import compact
from ticketpack.pruning.mask import apply_mask, ones_like
from ticketpack.pruning.structure import expand, set_units, trace
from ticketpack.pruning.targets import parameters, prunable_names


class Bottleneck(nn.Module):
    """RegNet's and ResNeXt's block in miniature: 1×1 conv, a grouped 3×3 conv (4 groups), 1×1 conv."""

    def __init__(self, groups: int = 4, inner: int = 16, wide: int = 24):
        super().__init__()
        self.a, self.bna = nn.Conv2d(1, inner, 1), nn.BatchNorm2d(inner)
        self.b, self.bnb = nn.Conv2d(inner, wide, 3, padding=1, groups=groups), nn.BatchNorm2d(wide)
        self.c, self.out = nn.Conv2d(wide, 8, 1), nn.Linear(8, 3)

    def forward(self, x):
        x = self.bna(self.a(x)).relu()
        x = self.bnb(self.b(x)).relu()
        return self.out(self.c(x).mean((2, 3)))


def _model(**kwargs):
    torch.manual_seed(0)
    model = Bottleneck(**kwargs).eval()
    with torch.no_grad():
        for bn in (model.bna, model.bnb):
            bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.bias.uniform_(-1, 1)
    return model, torch.randn(5, 1, 8, 8)


def test_the_channels_of_a_grouped_convolution_are_places_in_its_groups():
    model, x = _model()
    structure = trace(model, x, "out", prunable_names(model))
    into = next(g for g in structure.groups if g.root == "a")  # a's channels are b's input channels
    assert into.size == 4 and into.members.tolist() == [0, 1, 2, 3] * 4
    column = next(s for s in into.slices if s.param == "b.weight")
    assert (column.axis, column.side, column.index.tolist(), column.unit.tolist()) == (1, "in", [0, 1, 2, 3], [0, 1, 2, 3])
    out = next(g for g in structure.groups if g.root == "b")
    assert out.size == 6 and out.members.tolist() == list(range(6)) * 4
    assert not structure.skipped


def test_a_compacted_grouped_convolution_keeps_its_groups_and_the_logits():
    model, x = _model()
    prunable = prunable_names(model)
    structure = trace(model, x, "out", prunable)
    mask = ones_like(parameters(model, prunable))
    for g in structure.groups:
        set_units(mask, g, torch.tensor([0, 2]), False)
    apply_mask(model, expand(mask, structure, dict(model.named_parameters())))
    with torch.no_grad():
        want = model(x)
    small = copy.deepcopy(model)
    summary = compact(small, x, "out", prunable)
    assert summary["a.weight"] == [2, 4] and summary["b.weight"] == [4, 6]
    assert (small.b.groups, small.b.in_channels, small.b.out_channels) == (4, 8, 16)
    with torch.no_grad():
        assert torch.allclose(small(x), want, atol=1e-5)


def test_a_grouped_convolution_with_one_channel_per_group_stays_dense_with_the_reason():
    model, x = _model(groups=16, inner=16, wide=32)  # 1 input channel per group: a depthwise multiplier
    structure = trace(model, x, "out", prunable_names(model))
    assert not any(g.root in ("a", "b") for g in structure.groups)
    assert "one channel per group" in structure.skipped["a"]
