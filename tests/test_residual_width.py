"""The residual width of a Transformer and a ViT is one unit group (issue 24): it spans the embeddings, every
LayerNorm, every attention input and output projection and the feed-forward layers; a LayerNorm with pruned units
normalizes over its live ones (`LiveLayerNorm`), so compaction is exact; and a norm the tracer cannot map leaves
the width dense, with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ticketpack.export.compact import PrunedAttention, compact
from ticketpack.models.factory import resolve
from ticketpack.pruning.mask import apply_mask, bind_layers, ones_like
from ticketpack.pruning.norms import LiveLayerNorm
from ticketpack.pruning.structure import expand, per_unit, set_units, trace
from ticketpack.pruning.targets import output_layer, parameters, prunable_names

CUSTOM = str(Path(__file__).resolve().parents[1] / "examples" / "custom_models" / "models.py")


def _transformer():
    torch.manual_seed(0)
    model = resolve(f"{CUSTOM}:transformer")[0](input_shape=(12,), num_classes=3, vocab_size=200, dim=16, heads=4,
                                                 layers=2, ff=32).eval()
    x = torch.randint(1, 200, (6, 12))
    x[0, 7:] = 0  # padding reaches the attention's key padding mask
    return model, x


def _vit():
    torch.manual_seed(0)
    model = resolve(f"{CUSTOM}:vit")[0](input_shape=(1, 8, 8), num_classes=3, dim=16, heads=2, layers=2, mlp=32)
    return model.eval(), torch.randn(6, 1, 8, 8)


def _width(structure):
    return next(g for g in structure.groups if g.kind == "units" and "head.weight" in g.params("in"))


def test_the_vit_residual_width_spans_patches_tokens_norms_attention_and_mlp():
    model, x = _vit()
    structure = trace(model, x, "head", prunable_names(model))
    width = _width(structure)
    assert width.size == 16 and not structure.skipped
    assert set(width.params("out")) == {
        "conv_proj.weight", "conv_proj.bias", "class_token", "pos_embedding", "ln.weight", "ln.bias",
        *(f"layers.{i}.{p}" for i in (0, 1) for p in (
            "ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias", "self_attention.out_proj.weight",
            "self_attention.out_proj.bias", "mlp.3.weight", "mlp.3.bias"))}
    assert set(width.params("in")) == {"head.weight", *(f"layers.{i}.{p}" for i in (0, 1) for p in (
        "self_attention.in_proj_weight", "mlp.0.weight"))}
    tokens = next(s for s in width.slices if s.param == "pos_embedding")
    assert tokens.axis == 2  # (1, patches + 1, dim): the units are the last axis


@pytest.mark.parametrize("build", [_transformer, _vit], ids=["transformer", "vit"])
def test_a_compacted_model_with_pruned_width_computes_the_same_logits(build):
    model, x = build()
    prunable = prunable_names(model)
    structure = trace(model, x, output_layer(model, x), prunable)
    mask = ones_like(parameters(model, prunable))
    for g in structure.groups:  # three quarters of the width and of each MLP, half the heads
        set_units(mask, g, torch.arange(g.size // 2 if g.kind == "heads" else g.size * 3 // 4), False)
    apply_mask(model, expand(mask, structure, dict(model.named_parameters())))
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and all(isinstance(m, LiveLayerNorm) and int(m.live.sum()) == 4 for m in norms)
    with torch.no_grad():
        want = model(x)
    size = sum(p.numel() for p in model.parameters())
    summary = compact(model, x, "head", prunable)
    assert summary[_width(structure).name] == [4, 16]
    assert model.head.weight.shape[1] == 4
    assert not any(isinstance(m, (LiveLayerNorm, nn.MultiheadAttention)) for m in model.modules())
    assert all(m.normalized_shape == (4,) for m in model.modules() if isinstance(m, nn.LayerNorm))
    attention = [m for m in model.modules() if isinstance(m, PrunedAttention)]
    assert len(attention) == 2 and all(m.in_proj_weight.shape[1] == 4 and m.heads == m.original_heads // 2
                                       for m in attention)
    assert sum(p.numel() for p in model.parameters()) < size / 4
    with torch.no_grad():
        got = model(x)
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())


def test_a_live_layernorm_normalizes_over_its_live_units_and_zeroes_the_others():
    norm = nn.LayerNorm(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    live = torch.tensor([True, False, True, True, False, True])
    with torch.no_grad():
        norm.weight[~live] = 0
        norm.bias[~live] = 0
    x = torch.randn(5, 6)
    x[:, ~live] = 0
    got = LiveLayerNorm(norm, live)(x)
    want = F.layer_norm(x[:, live], (4,), norm.weight[live], norm.bias[live], norm.eps)
    assert torch.allclose(got[:, live], want, atol=1e-6) and not got[:, ~live].any()


def test_each_new_mask_rebinds_the_live_units_and_a_full_mask_binds_nothing():
    model, _ = _vit()
    prunable = prunable_names(model)
    assert bind_layers(model, ones_like(parameters(model, prunable))) == 0
    assert not any(isinstance(m, LiveLayerNorm) for m in model.modules())
    first = {"ln.weight": torch.tensor([True] * 8 + [False] * 8)}
    assert bind_layers(model, first) == 1 and int(model.ln.live.sum()) == 8
    assert bind_layers(model, {"ln.weight": torch.tensor([True] * 12 + [False] * 4)}) == 0
    assert int(model.ln.live.sum()) == 12 and isinstance(model.ln, LiveLayerNorm)
    assert "ln.live" not in model.state_dict()  # the mask is saved, not this copy of it


class _NoAffine(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.norm, self.out = nn.Linear(8, 16), nn.LayerNorm(16, elementwise_affine=False), nn.Linear(16, 3)

    def forward(self, x):
        return self.out(self.norm(self.inp(x)))


class _Scaled(nn.Module):
    """A layer of the user's own, with a parameter and no registered layer type."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(16, 16))

    def forward(self, x):
        return x @ self.scale


class _IntoUnmapped(_NoAffine):
    def __init__(self):
        super().__init__()
        self.norm, self.mix = nn.LayerNorm(16), _Scaled()

    def forward(self, x):
        return self.out(self.mix(self.norm(self.inp(x))))


class _Functional(_NoAffine):
    def __init__(self):
        super().__init__()
        self.norm = None

    def forward(self, x):
        return self.out(F.layer_norm(self.inp(x), (16,)))


class _ChannelsNorm(nn.LayerNorm):
    """torchvision's LayerNorm2d: a LayerNorm over the channels of (N, C, H, W), with a forward of its own."""

    def forward(self, x):
        return F.layer_norm(x.permute(0, 2, 1), self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 2, 1)


class _OwnForward(_NoAffine):
    def __init__(self):
        super().__init__()
        self.norm = _ChannelsNorm(16)

    def forward(self, x):
        return self.out(self.norm(self.inp(x).unsqueeze(-1)).squeeze(-1))


@pytest.mark.parametrize("model,why", [
    (_NoAffine, "LayerNorm norm has no affine weight"),
    (_OwnForward, "(NativeLayerNormBackward0) normalizes over these units"),  # its F.layer_norm, met first
    (_IntoUnmapped, "layer mix (_Scaled) is not mapped"),
    (_Functional, "normalizes over these units outside any layer ticketpack maps"),
], ids=["no-affine", "own-forward", "feeds-an-unmapped-layer", "functional"])
def test_a_layernorm_the_width_cannot_pass_leaves_it_dense_with_the_reason(model, why):
    model = model().eval()
    x = torch.randn(4, 8)
    structure = trace(model, x, "out", prunable_names(model))
    assert not any("inp.weight" in g.params() for g in structure.groups)
    assert any(why in reason for reason in structure.skipped.values()), structure.skipped


def test_neuron_pruning_scores_width_heads_and_mlp_units_in_one_ranking():
    from ticketpack.pruning.strategies import prune

    model, x = _transformer()
    prunable = prunable_names(model)
    structure = trace(model, x, "head", prunable)
    mask = prune("global", {n: p.detach() for n, p in parameters(model, prunable).items()},
                 ones_like(parameters(model, prunable)), 0.5, [], 0.0, torch.Generator().manual_seed(0),
                 granularity="neuron", structure=structure)
    kinds = {g.name: int((~per_unit(mask, g, "out", "any")).sum()) for g in structure.groups}
    assert sum(kinds.values()) == round(0.5 * sum(g.size for g in structure.groups))
    assert kinds[_width(structure).name] > 0


@pytest.mark.parametrize("batch_first", [True, False])
def test_pruned_attention_with_every_head_computes_what_multihead_attention_does(batch_first):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    same = PrunedAttention(mha, torch.arange(4)).eval()
    q, kv = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    if not batch_first:
        q, kv = q.transpose(0, 1), kv.transpose(0, 1)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[0, 4:] = True
    causal = torch.ones(5, 5, dtype=torch.bool).triu(1)
    with torch.no_grad():
        for args, kwargs in [((q, q, q), {}), ((q, kv, kv), {"key_padding_mask": pad}), ((q, q, q), {"attn_mask": causal})]:
            want, want_w = mha(*args, **kwargs)
            got, got_w = same(*args, **kwargs)
            assert torch.allclose(got, want, atol=1e-5) and torch.allclose(got_w, want_w, atol=1e-5)


def test_a_layer_scale_parameter_is_cut_with_its_channels():
    """ConvNeXt's layer scale: a bare (C, 1, 1) parameter multiplying a depthwise convolution's channels."""

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3, padding=1)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.scale = nn.Parameter(torch.rand(8, 1, 1) + 0.5)
            self.out = nn.Linear(8, 3)

        def forward(self, x):
            y = self.conv(x)
            return self.out((y + self.scale * self.dw(y)).mean((2, 3)))

    model = Scaled().eval()
    x = torch.randn(4, 1, 6, 6)
    prunable = prunable_names(model)
    structure = trace(model, x, "out", prunable)
    group = next(g for g in structure.groups if "scale" in g.params())
    assert next(s for s in group.slices if s.param == "scale").axis == 0
    mask = ones_like(parameters(model, prunable))
    set_units(mask, group, torch.arange(5), False)
    apply_mask(model, expand(mask, structure, dict(model.named_parameters())))
    with torch.no_grad():
        want = model(x)
    compact(model, x, "out", prunable)
    assert model.scale.shape == (3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), want, atol=1e-5)


def test_a_forward_that_keeps_its_own_width_fails_compaction_with_one_line():
    """torchvision's VisionTransformer reshapes by its stored hidden_dim: once the width shrinks, its forward
    cannot run; compaction says which group it was cutting and what to export instead."""
    from ticketpack.core.errors import TicketpackError

    class Stored(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.out, self.width = nn.Linear(8, 16), nn.Linear(16, 3), 16

        def forward(self, x):
            return self.out(self.fc(x).relu().reshape(-1, self.width))

    model = Stored().eval()
    x = torch.randn(4, 8)
    prunable = prunable_names(model)
    structure = trace(model, x, "out", prunable)
    mask = ones_like(parameters(model, prunable))
    set_units(mask, structure.groups[0], torch.arange(4), False)
    apply_mask(model, expand(mask, structure, dict(model.named_parameters())))
    with pytest.raises(TicketpackError) as info:
        compact(model, x, "out", prunable)
    message = str(info.value)
    assert message.startswith("compact: the model no longer runs once fc.weight lost units") and "\n" not in message
    assert "export it with `format` dense or sparse" in message
