"""Unit structure from Torch-Pruning's dependency graph, neuron-granularity pruning over it, and exact compaction:
one code path for the built-in models and for models ticketpack has never seen."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from torch import nn

from ticketpack.data import ImagePreprocessing, TextPreprocessing
from ticketpack.export.compact import compact
from ticketpack.models import ModelSpec, build, example_input
from ticketpack.pruning import mask as masks
from ticketpack.pruning.strategies import prune
from ticketpack.pruning.structure import expand, per_unit, shuffle_units, trace
from ticketpack.pruning.targets import (
    output_layer,
    output_weights,
    parameters,
    prunable_names,
)
from ticketpack.search import PruneConfig, SearchConfig, Ticket, search

CUSTOM = str(Path(__file__).resolve().parents[1] / "examples" / "custom_models" / "models.py")
IMAGE, TEXT = ImagePreprocessing(), TextPreprocessing(num_buckets=64, max_tokens=12)
MODELS = [
    ("lenet-300-100", {}, IMAGE), ("convnet", {}, IMAGE), ("bow", {}, TEXT), ("textcnn", {}, TEXT),
    (f"{CUSTOM}:resnet", {"width": 8}, IMAGE), (f"{CUSTOM}:branches", {"wide": 16, "narrow": 8}, IMAGE),
    (f"{CUSTOM}:transformer", {"dim": 16, "heads": 4, "ff": 16}, TEXT),
    (f"{CUSTOM}:vit", {"dim": 16, "heads": 2, "mlp": 16}, IMAGE),
]
IDS = [m[0].rpartition(":")[2] for m in MODELS]


def _setup(name, options, prep):
    torch.manual_seed(0)
    x = example_input(prep)
    model = build(ModelSpec(name=name, options=options), prep, 3, x)
    prunable = prunable_names(model)
    layer = output_layer(model, x)
    return model, x, prunable, layer, trace(model, x, layer, prunable)


def _prune(model, structure, prunable, strategy="layerwise", rate=0.5, rounds=1, random_weights=True):
    gen = torch.Generator().manual_seed(0)
    mask = masks.ones_like(parameters(model, prunable))
    for _ in range(rounds):
        weights = {n: (torch.randn_like(p) if random_weights else p.detach()) for n, p in parameters(model, prunable).items()}
        mask = prune(strategy, weights, mask, rate, [], 0.0, gen, granularity="neuron", structure=structure)
    return mask


def test_granularity_defaults_to_weight():
    assert PruneConfig().granularity == "weight"
    with pytest.raises(ValueError):
        PruneConfig(granularity="block")


def test_the_output_layer_is_detected_from_the_models_output():
    for name, options, prep in MODELS:
        model, x, prunable, layer, _ = _setup(name, options, prep)
        assert layer in ("out", "head"), name
        assert output_weights(model, layer, prunable) == [f"{layer}.weight"]


def test_residual_blocks_couple_the_stem_with_every_block_output():
    _, _, _, _, structure = _setup(f"{CUSTOM}:resnet", {"width": 8}, IMAGE)
    stem = next(g for g in structure.groups if g.root == "stem.0")
    assert {"stem.0.weight", "stem.1.weight", "blocks.0.conv2.weight", "blocks.1.conv2.weight", "blocks.1.bn2.bias",
            "blocks.0.conv1.weight", "blocks.1.conv1.weight", "head.weight"} <= set(stem.params())
    assert set(stem.params("in")) == {"blocks.0.conv1.weight", "blocks.1.conv1.weight", "head.weight"}


def test_concatenated_branches_map_to_their_own_columns_of_the_consumer():
    _, _, _, _, structure = _setup(f"{CUSTOM}:branches", {"wide": 16, "narrow": 8}, IMAGE)
    right = next(g for g in structure.groups if g.root == "right")
    mix = next(s for s in right.slices if s.param == "mix.weight")
    assert mix.axis == 1 and mix.index.tolist() == list(range(16, 24)) and mix.unit.tolist() == list(range(8))


def test_the_transformer_residual_width_is_one_group_through_every_layernorm():
    _, _, _, _, structure = _setup(f"{CUSTOM}:transformer", {"dim": 16, "heads": 4, "ff": 16}, TEXT)
    assert {g.root for g in structure.groups} >= {"layers.0.ff1", "layers.1.ff1"}
    assert not structure.skipped
    width = next(g for g in structure.groups if "tokens.weight" in g.params())
    assert width.size == 16 and {"positions.weight", "layers.0.norm1.weight", "layers.1.norm2.bias",
                                 "layers.0.attn.out_proj.weight", "layers.1.ff2.weight"} <= set(width.params("out"))
    assert set(width.params("in")) == {"layers.0.attn.in_proj_weight", "layers.1.attn.in_proj_weight",
                                       "layers.0.ff1.weight", "layers.1.ff1.weight", "head.weight"}


@pytest.mark.parametrize("name,options,prep", MODELS, ids=IDS)
@pytest.mark.parametrize("strategy", ["global", "layerwise", "random"])
def test_a_pruned_unit_loses_every_weight_of_its_group(name, options, prep, strategy):
    model, _, prunable, _, structure = _setup(name, options, prep)
    mask = _prune(model, structure, prunable, strategy, rounds=2)
    for g in structure.groups:
        alive = per_unit(mask, g, "out", "any") | per_unit(mask, g, "in", "any")
        dead = torch.nonzero(~alive, as_tuple=True)[0]
        assert len(dead) > 0 and int(alive.sum()) >= 1
        for s in g.slices:
            if s.param in mask:
                rows = mask[s.param].movedim(s.axis, 0)[torch.from_numpy(s.index)]
                hit = torch.isin(torch.from_numpy(s.unit), dead)
                assert not rows[hit].any()


def test_neuron_mask_is_the_outer_product_of_the_surviving_units():
    model, _, prunable, _, structure = _setup("lenet-300-100", {}, IMAGE)
    mask = _prune(model, structure, prunable, "global", rounds=2)
    a0, a1 = mask["hidden.0.weight"].any(1), mask["hidden.1.weight"].any(1)
    assert torch.equal(mask["hidden.0.weight"], a0[:, None].expand(-1, 64))
    assert torch.equal(mask["hidden.1.weight"], a1[:, None] & a0[None, :])
    assert torch.equal(mask["out.weight"], a1[None, :].expand(3, -1))


def test_layerwise_removes_rate_of_the_remaining_units_of_each_layer():
    model, _, prunable, _, structure = _setup("lenet-300-100", {}, IMAGE)
    mask = _prune(model, structure, prunable, "layerwise", rate=0.2, rounds=3)
    assert [int(mask[n].any(1).sum()) for n in ("hidden.0.weight", "hidden.1.weight")] == [154, 51]  # 300→240→192→154


def test_output_classes_are_never_pruned():
    model, _, prunable, _, structure = _setup("lenet-300-100", {}, IMAGE)
    mask = _prune(model, structure, prunable, "global", rate=0.5, rounds=3)
    assert bool(mask["out.weight"].any(1).all())


def test_expand_zeroes_the_bias_and_batchnorm_of_pruned_units_only():
    model, _, prunable, _, structure = _setup(f"{CUSTOM}:resnet", {"width": 8}, IMAGE)
    mask = _prune(model, structure, prunable, "layerwise", rate=0.5)
    full = expand(mask, structure, dict(model.named_parameters()))
    dead_stem = ~mask["stem.0.weight"].flatten(1).any(1)
    assert dead_stem.any()
    assert torch.equal(full["stem.1.weight"], ~dead_stem) and torch.equal(full["blocks.0.bn2.bias"], ~dead_stem)
    assert set(mask) < set(full)


@pytest.mark.parametrize("name,options,prep", MODELS, ids=IDS)
def test_compaction_removes_pruned_units_and_keeps_the_logits(name, options, prep):
    model, x, prunable, layer, structure = _setup(name, options, prep)
    mask = _prune(model, structure, prunable, "layerwise", rate=0.5, rounds=2, random_weights=False)
    masks.apply_mask(model, expand(mask, structure, dict(model.named_parameters())))
    model.eval()
    batch = example_input(prep, batch=5)
    with torch.no_grad():
        want = model(batch)
    size = sum(p.numel() for p in model.parameters())
    summary = compact(model, x, layer, prunable)
    assert any(kept < was for kept, was in summary.values())
    assert sum(p.numel() for p in model.parameters()) < size
    with torch.no_grad():
        assert torch.allclose(model(batch), want, atol=1e-5)


def test_shuffled_units_keep_whole_units_and_per_group_counts():
    model, _, prunable, _, structure = _setup(f"{CUSTOM}:branches", {"wide": 16, "narrow": 8}, IMAGE)
    mask = _prune(model, structure, prunable, "layerwise", rate=0.5)
    moved = shuffle_units(mask, structure, torch.Generator().manual_seed(3))
    assert {n: int(m.sum()) for n, m in moved.items()} == {n: int(m.sum()) for n, m in mask.items()}
    assert masks.digest(moved) != masks.digest(mask)
    for g in structure.groups:
        out_alive, in_alive = per_unit(moved, g, "out", "any"), per_unit(moved, g, "in", "any")
        assert torch.equal(out_alive, in_alive)


def test_a_model_the_tracer_cannot_follow_fails_neuron_granularity_with_the_reason():
    class Recurrent(nn.Module):
        def __init__(self, input_shape, num_classes):
            super().__init__()
            self.rnn = nn.GRU(64, 8, batch_first=True)
            self.out = nn.Linear(8, num_classes)

        def forward(self, x):
            return self.out(self.rnn(x.flatten(1).unsqueeze(1))[0][:, -1])

    x = example_input(IMAGE)
    model = Recurrent((1, 8, 8), 3)
    structure = trace(model, x, "out", prunable_names(model))
    assert structure.groups == () and any("GRU" in why for why in structure.skipped.values())


def test_search_with_neuron_granularity_records_it_and_removes_units(tmp_path):
    manifest = search(tiny_config(prune={"rounds": 1, "rate": 0.5, "granularity": "neuron", "strategy": "layerwise"}),
                      tmp_path / "t")
    assert manifest.config.prune.granularity == "neuron"
    assert manifest.rounds[1].weights_remaining == pytest.approx((9600 + 7500 + 500) / 50200)  # half the units: a quarter of hidden.1
    ticket = Ticket.load(tmp_path / "t")
    assert int(ticket.mask(1)["hidden.0.weight"].any(1).sum()) == 150
    state = ticket.trained_state(1)
    dead = ~ticket.mask(1)["hidden.0.weight"].any(1)
    assert not state["hidden.0.bias"][dead].any()  # a pruned unit loses its bias too: it outputs exactly zero


def test_config_files_and_flags_accept_granularity():
    cfg = SearchConfig.model_validate({"prune": {"granularity": "neuron"}})
    assert cfg.prune.granularity == "neuron"


def test_attention_heads_are_a_group_and_compact_into_fewer_heads_exactly():
    from ticketpack.export.compact import PrunedAttention

    model, x, prunable, layer, structure = _setup(f"{CUSTOM}:transformer", {"dim": 16, "heads": 4, "ff": 16}, TEXT)
    heads = [g for g in structure.groups if g.kind == "heads"]
    assert [g.name for g in heads] == ["layers.0.attn:heads", "layers.1.attn:heads"] and heads[0].size == 4
    mask = _prune(model, structure, prunable, "layerwise", rate=0.5, random_weights=False)
    assert int(per_unit(mask, heads[0], "out", "any").sum()) == 2
    masks.apply_mask(model, expand(mask, structure, dict(model.named_parameters())))
    assert not model.layers[0].attn.in_proj_bias.detach().reshape(3, 4, 4)[:, ~per_unit(mask, heads[0], "out", "any")].any()
    batch = example_input(TEXT, batch=5)
    batch[0, 6:] = 0  # padding: the key padding mask reaches the pruned attention too
    with torch.no_grad():
        want = model.eval()(batch)
    summary = compact(model, x, layer, prunable)
    assert summary["layers.0.attn:heads"] == [2, 4] and isinstance(model.layers[0].attn, PrunedAttention)
    with torch.no_grad():
        assert torch.allclose(model(batch), want, atol=1e-5)


def test_a_group_whose_channel_mapping_does_not_hold_is_left_dense_with_the_reason():
    """Torch-Pruning 1.6 pairs the halves of ``chunk(2, dim=1)`` with the wrong consumers: the numeric check
    (silence a unit, its consumers' weights must get exactly zero gradient) catches it."""

    class Halves(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 8, 3, padding=1)
            self.left, self.right = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)
            self.out = nn.Linear(8, 3)

        def forward(self, x):
            a, b = self.stem(x).chunk(2, dim=1)
            return self.out(torch.cat([self.left(a), self.right(b)], 1).mean((2, 3)))

    model = Halves()
    structure = trace(model, example_input(IMAGE), "out", prunable_names(model))
    assert {g.root for g in structure.groups} == {"left", "right"}
    assert "channel mapping of stem's units does not hold" in structure.skipped["stem"]
