"""Neuron granularity: pruning removes whole units (incoming and outgoing weights), weight granularity is unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ticketpack.data import ImagePreprocessing, TextPreprocessing
from ticketpack.errors import TicketpackError
from ticketpack.models import ModelSpec, build
from ticketpack.pruning import mask as masks
from ticketpack.pruning.strategies import prune
from ticketpack.pruning.units import unit_graph
from ticketpack.search import PruneConfig, SearchConfig, Ticket, search

from conftest import tiny_config

MODELS = [("lenet-300-100", "image"), ("convnet", "image"), ("bow", "text"), ("textcnn", "text")]


def _model(name: str, kind: str):
    torch.manual_seed(0)
    prep = ImagePreprocessing() if kind == "image" else TextPreprocessing(num_buckets=64, max_tokens=12)
    return build(ModelSpec(name=name), prep, 3)


def _alive(mask, group) -> torch.Tensor:
    return mask[group.producer].movedim(group.axis, 0).reshape(group.size, -1).any(1)


def _prune(model, strategy="layerwise", rate=0.5, rounds=1):
    units, gen = unit_graph(model), torch.Generator().manual_seed(0)
    mask = masks.ones_like(model)
    for _ in range(rounds):
        weights = {n: torch.randn_like(p) for n, p in model.prunable_parameters().items()}
        mask = prune(strategy, weights, mask, rate, model.output_names(), 0.0, gen, granularity="neuron", units=units)
    return units, mask


def test_granularity_defaults_to_weight():
    assert PruneConfig().granularity == "weight"
    with pytest.raises(ValueError):
        PruneConfig(granularity="block")


@pytest.mark.parametrize("name,kind", MODELS)
@pytest.mark.parametrize("strategy", ["global", "layerwise", "random"])
def test_a_pruned_unit_loses_all_incoming_and_outgoing_weights(name, kind, strategy):
    model = _model(name, kind)
    units, mask = _prune(model, strategy, rounds=2)
    for g in units.groups:
        dead = torch.nonzero(~_alive(mask, g), as_tuple=True)[0]
        assert len(dead) > 0
        for c in g.consumers:
            cols = mask[c.name].movedim(c.axis, 0)
            for u in dead.tolist():
                assert not cols[c.offset + u * c.block : c.offset + (u + 1) * c.block].any()


def test_neuron_mask_is_the_outer_product_of_the_surviving_units():
    model = _model("lenet-300-100", "image")
    units, mask = _prune(model, "global", rounds=2)
    alive0, alive1 = (_alive(mask, g) for g in units.groups)
    assert torch.equal(mask["hidden.0.weight"], alive0[:, None].expand(-1, 64))
    assert torch.equal(mask["hidden.1.weight"], alive1[:, None] & alive0[None, :])
    assert torch.equal(mask["out.weight"], alive1[None, :].expand(3, -1))


def test_layerwise_removes_rate_of_the_remaining_units_of_each_layer():
    model = _model("lenet-300-100", "image")
    units, mask = _prune(model, "layerwise", rate=0.2, rounds=3)
    assert [int(_alive(mask, g).sum()) for g in units.groups] == [154, 51]  # 300→240→192→154, 100→80→64→51


def test_every_layer_keeps_at_least_one_unit():
    model = _model("bow", "text")
    units, mask = _prune(model, "global", rate=0.9, rounds=6)
    assert all(int(_alive(mask, g).sum()) >= 1 for g in units.groups)


def test_output_classes_are_never_pruned():
    model = _model("lenet-300-100", "image")
    _, mask = _prune(model, "global", rate=0.5, rounds=3)
    assert bool(mask["out.weight"].any(1).all())


def test_unknown_architecture_has_no_unit_graph():
    with pytest.raises(TicketpackError, match="supported models"):
        unit_graph(nn.Linear(3, 2))


def test_search_with_neuron_granularity_records_it_and_removes_units(tmp_path):
    manifest = search(tiny_config(prune={"rounds": 1, "rate": 0.5, "granularity": "neuron", "strategy": "layerwise"}),
                      tmp_path / "t")
    assert manifest.config.prune.granularity == "neuron"
    assert manifest.rounds[1].weights_remaining == pytest.approx((9600 + 7500 + 500) / 50200)  # half the units: a quarter of hidden.1
    mask = Ticket.load(tmp_path / "t").mask(1)
    assert int(mask["hidden.0.weight"].any(1).sum()) == 150


def test_config_files_and_flags_accept_granularity():
    cfg = SearchConfig.model_validate({"prune": {"granularity": "neuron"}})
    assert cfg.prune.granularity == "neuron"
