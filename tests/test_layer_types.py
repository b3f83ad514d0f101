"""Layer types users extend: a layer ticketpack has never seen (tests/fixtures/user_layers.py, ordinary user code
outside the package) is taught to neuron granularity by one registered class, pruned by whole units and compacted
exactly; without the registration it stays dense, named with the reason. Granularities are registered objects."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import FIXTURES, tiny_config
from torch import nn

from ticketpack.core.errors import TicketpackError
from ticketpack.core.references import resolve_reference
from ticketpack.export.compact import compact
from ticketpack.export.exporter import export_model
from ticketpack.pruning import mask as masks
from ticketpack.pruning.granularity import GRANULARITIES, get_granularity
from ticketpack.pruning.layers import LAYERS, LayerType, layer_type, register_layer
from ticketpack.search import Ticket, search

USER = f"{FIXTURES / 'user_layers.py'}:scaled_mlp"


def _search(out: Path):
    return search(tiny_config(model={"name": USER}, train={"epochs": 1},
                              prune={"rounds": 2, "rate": 0.5, "granularity": "neuron", "strategy": "layerwise"}), out)


def _compacted_model(ticket: Ticket, level: int) -> nn.Module:
    """The ticket's model at ``level`` (trained weights, training mask applied), compacted in place."""
    model = ticket.build_model()
    model.load_state_dict(ticket.trained_state(level))
    masks.apply_mask(model, ticket.training_mask(model, ticket.mask(level)))
    compact(model, ticket.example(), ticket.output_layer, list(ticket.manifest.prunable))
    return model


def test_a_registered_user_layer_is_pruned_by_whole_units_and_compacts_exactly(tmp_path):
    manifest = _search(tmp_path / "t")
    assert "mid.weight" in manifest.prunable  # the registration's `weights`: the mask covers the user's layer
    ticket = Ticket.load(tmp_path / "t")
    model = ticket.build_model()
    structure = ticket.structure(model)
    mid = next(g for g in structure.groups if g.root == "mid")
    assert {(s.param, s.axis, s.side) for s in mid.slices} == {
        ("mid.weight", 0, "out"), ("mid.bias", 0, "out"), ("mid.scale", 0, "out"), ("out.weight", 1, "in")}
    assert ("mid.weight", 1, "in") in {(s.param, s.axis, s.side) for g in structure.groups if g.root == "hidden"
                                       for s in g.slices}
    assert not any("mid" in k or "mid" in why for k, why in structure.skipped.items())

    mask = ticket.mask(2)
    alive = mask["mid.weight"].any(1)
    assert int(alive.sum()) == 4  # 16 units, half the living ones per round, two rounds
    assert not mask["out.weight"][:, ~alive].any()  # a pruned unit loses its consumers' columns too
    state = ticket.trained_state(2)
    assert not state["mid.bias"][~alive].any() and not state["mid.scale"][~alive].any()  # and outputs exactly zero

    result = export_model(tmp_path / "t", tmp_path / "m.onnx", level=2, format="compact", threads=1)
    assert result.card.export.compacted["mid.weight"] == [4, 16]
    assert result.card.parity.max_abs_diff <= 1e-4 and result.card.parity.argmax_agreement == 1.0
    compacted = _compacted_model(ticket, 2)
    assert type(compacted.mid).__name__ == "ScaledLinear"  # the user's own layer, cut by its registration
    assert [tuple(compacted.mid.get_parameter(p).shape) for p in ("weight", "bias", "scale")] == [(4, 8), (4,), (4,)]
    assert tuple(compacted.out.weight.shape) == (10, 4)


def test_without_the_registration_the_layer_stays_dense_with_a_reason_naming_it(tmp_path, monkeypatch):
    resolve_reference(USER, "--model")  # the user's file is imported (and registers its layer) ...
    registered = [n for n in LAYERS.in_order() if n.endswith("ScaledLinear")]
    assert len(registered) == 1
    monkeypatch.setattr(LAYERS, "_items", {n: e for n, e in LAYERS._items.items() if n not in registered})  # ... undone

    manifest = _search(tmp_path / "t")
    assert "mid.weight" not in manifest.prunable
    ticket = Ticket.load(tmp_path / "t")
    structure = ticket.structure(ticket.build_model())
    assert [g.root for g in structure.groups] == ["inp"]  # `hidden` feeds the unknown layer: left out with it
    assert structure.skipped["mid"] == "layer mid (ScaledLinear) is not mapped: its units stay dense"
    assert structure.skipped["hidden"] == "layer mid (ScaledLinear) is not mapped"
    assert manifest.dense_layers == structure.skipped  # what stayed dense, and why, is on record in the manifest

    result = export_model(tmp_path / "t", tmp_path / "m.onnx", level=2, format="compact", threads=1)
    assert result.card.export.compacted["inp.weight"] == [8, 32] and "mid.weight" not in result.card.export.compacted
    assert result.card.parity.max_abs_diff <= 1e-4
    compacted = _compacted_model(ticket, 2)
    assert tuple(compacted.mid.weight.shape) == (16, 32) and tuple(compacted.hidden.weight.shape) == (32, 8)


def test_the_layer_registry_holds_the_built_ins_and_refuses_a_bad_registration():
    assert {"torch.nn.Linear", "torch.nn.Conv2d", "torch.nn.Embedding", "torch.nn.LayerNorm"} <= set(LAYERS.list())
    assert layer_type(nn.Linear(2, 3)).prunable(nn.Linear(2, 3)) == ["weight"]
    assert layer_type(nn.BatchNorm1d(3)).makes_units is False and layer_type(nn.Embedding(4, 2)).makes_units
    assert layer_type(nn.GRU(2, 2)) is None
    with pytest.raises(ValueError, match="registered twice"):

        @register_layer
        class Again(LayerType):
            module = nn.Linear

    with pytest.raises(TypeError, match="module = MyLayer"):

        @register_layer
        class Nothing(LayerType):
            pass


def test_granularity_is_an_object_that_carries_its_properties():
    assert GRANULARITIES.list() == ["neuron", "weight"]
    assert get_granularity("neuron").needs_structure and not get_granularity("weight").needs_structure
    neuron = get_granularity("neuron")
    assert get_granularity(neuron) is neuron
    mask = {"w": torch.ones(3, 2, dtype=torch.bool)}
    assert get_granularity("weight").training_mask(mask, None, {}) is mask
    with pytest.raises(ValueError, match="structure"):
        neuron.random_like(mask, None, torch.Generator())
    with pytest.raises(TicketpackError, match="unknown granularity 'block'; known: neuron, weight"):
        get_granularity("block")
