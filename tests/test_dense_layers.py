"""What a neuron search leaves dense is said, with why (issue 24): in the search's output and in the manifest; and
the output layer of a convolutional head (conv → ReLU → pool, as SqueezeNet's) is found, or the error names the
candidate it saw."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config
from torch import nn

from ticketpack.core.errors import FieldError
from ticketpack.pruning.targets import output_layer
from ticketpack.search import search


class ConvHead(nn.Module):
    """SqueezeNet's head in miniature: the classes are the channels of a 1×1 conv, then ReLU and a global pool."""

    def __init__(self, input_shape=(1, 8, 8), num_classes=10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(input_shape[0], 16, 3, padding=1), nn.ReLU())
        self.classifier = nn.Sequential(nn.Conv2d(16, num_classes, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


class Sliced(nn.Module):
    """The logits are a slice of a wider layer: no layer outputs the class count."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 6)

    def forward(self, x):
        return self.fc(x)[:, :3]


class Normed(nn.Module):
    """A GroupNorm over the hidden units: neuron granularity cannot remove them exactly."""

    def __init__(self, input_shape=(1, 8, 8), num_classes=10):
        super().__init__()
        self.inp = nn.Linear(64, 32)
        self.norm = nn.GroupNorm(4, 32)
        self.hidden = nn.Linear(32, 16)
        self.out = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(self.norm(self.inp(x.flatten(1))))))


def test_a_convolutional_head_is_found_by_its_channels():
    assert output_layer(ConvHead(), torch.zeros(2, 1, 8, 8)) == "classifier.0"


def test_no_candidate_names_the_last_layer_it_saw():
    with pytest.raises(FieldError) as info:
        output_layer(Sliced(), torch.zeros(2, 4))
    message = str(info.value)
    assert "(3 classes)" in message and "'fc', outputs shape (2, 6)" in message
    assert info.value.fields == ("prune.output_layer",)


def test_a_neuron_search_says_which_layers_stay_dense_and_why(tmp_path):
    events = []
    manifest = search(tiny_config(train={"epochs": 1}, prune={"rounds": 1, "granularity": "neuron"}),
                      tmp_path / "t", model=Normed, on_event=events.append)
    assert manifest.dense_layers and set(manifest.dense_layers) >= {"inp"}
    assert "GroupNorm" in manifest.dense_layers["inp"]
    said = [e.message for e in events if e.kind == "dense_layers"]
    assert len(said) == 1 and said[0].splitlines()[1:] == [f"  {k}: {v}" for k, v in manifest.dense_layers.items()]
    from ticketpack.export.exporter import export_model

    card = export_model(tmp_path / "t", tmp_path / "m.onnx", level=1, format="compact", threads=1,
                        allow_changed_model=True).card
    assert card.sparsity.dense_layers == manifest.dense_layers  # and in the exported file's card


def test_a_weight_search_records_no_dense_layers(tmp_path):
    manifest = search(tiny_config(train={"epochs": 1}, prune={"rounds": 1}), tmp_path / "w")
    assert manifest.dense_layers is None


def test_a_trace_that_hangs_stops_with_a_message_naming_the_layer(monkeypatch):
    """No silent hang: a trace past its bound stops with one line naming the layer it was working on."""
    import time

    import torch_pruning as tp

    from ticketpack.core.errors import TicketpackError
    from ticketpack.pruning import bounded
    from ticketpack.pruning.structure import trace

    def endless(self, model, example_inputs, **kwargs):
        module = model.hidden  # what a tracer holds while it walks the graph
        while module is not None:
            pass

    monkeypatch.setattr(tp.DependencyGraph, "build_dependency", endless)
    monkeypatch.setattr(bounded, "TRACE_SECONDS", 0.3)
    began = time.perf_counter()
    with pytest.raises(TicketpackError) as info:
        trace(Normed(), torch.zeros(2, 1, 8, 8), "out", ["inp.weight", "hidden.weight", "out.weight"])
    assert time.perf_counter() - began < 5
    message = str(info.value)
    assert "within 0.3 s at layer hidden (Linear)" in message and "\n" not in message
    import signal

    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None) and signal.getitimer(signal.ITIMER_REAL)[0] == 0
