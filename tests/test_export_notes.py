"""Export says what it did not do, and measures what it did (issue 24): dynamic int8 leaves convolutions float
(ONNX Runtime's ConvInteger is slower than float) and says so; a sparse file of a weight ticket needs no unit
trace, so a model the tracer cannot take still exports; ``seconds`` is the wall time of the whole export."""

from __future__ import annotations

import io
import time

import onnx
import pytest
import torch
from torch import nn

from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.export import exporter
from ticketpack.export.exporter import export_model
from ticketpack.export.quantize import dynamic_int8


def _graph(model: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(model.eval(), (example,), buffer, dynamo=False, input_names=["input"], output_names=["logits"])
    return onnx.load_from_string(buffer.getvalue())


def test_dynamic_int8_leaves_convolutions_float_and_says_so():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    quantized, note = dynamic_int8(_graph(model, torch.randn(1, 1, 8, 8)), [])
    ops = {n.op_type for n in quantized.graph.node}
    assert "ConvInteger" not in ops and "Conv" in ops and "MatMulInteger" in ops
    assert note.startswith("its convolution stays float under dynamic int8 (ONNX Runtime's ConvInteger ran")
    assert note.endswith("`quantize` int8-static quantizes convolutions too")


def test_dynamic_int8_refuses_a_model_with_nothing_it_quantizes():
    model = nn.Sequential(nn.Conv2d(1, 3, 8), nn.Flatten())
    with pytest.raises(FieldError) as info:
        dynamic_int8(_graph(model, torch.randn(1, 1, 8, 8)), [])
    assert info.value.fields == ("quantize",) and "int8-static" in str(info.value) and "\n" not in str(info.value)


def test_a_sparse_file_of_a_weight_ticket_needs_no_unit_trace(digits_ticket, tmp_path, monkeypatch):
    import ticketpack.export.compact as compact

    def untraceable(*args, **kwargs):
        raise TicketpackError("neuron granularity: Torch-Pruning cannot trace MLP: ZeroDivisionError")

    monkeypatch.setattr(compact, "trace", untraceable)
    result = export_model(digits_ticket, tmp_path / "s.onnx", level=3, format="sparse", threads=1)
    assert (tmp_path / "s.onnx").exists() and result.card.export.bitmask_encoded
    assert "dead units were not removed (neuron granularity: Torch-Pruning cannot trace MLP" in result.format_note
    with pytest.raises(TicketpackError, match="cannot trace"):
        export_model(digits_ticket, tmp_path / "c.onnx", level=3, format="compact", threads=1)
    assert not (tmp_path / "c.onnx").exists()


def test_seconds_is_the_wall_time_of_the_whole_export(digits_ticket, tmp_path, monkeypatch):
    prepare = exporter.prepare
    spent = {}

    def slow_prepare(*args, **kwargs):
        began = time.perf_counter()
        time.sleep(0.5)  # loading a large source: part of the export a user waits for
        out = prepare(*args, **kwargs)
        spent["prepare"] = time.perf_counter() - began
        return out

    monkeypatch.setattr(exporter, "prepare", slow_prepare)
    began = time.perf_counter()
    result = export_model(digits_ticket, tmp_path / "m.onnx", level=1, format="dense", threads=1)
    wall = time.perf_counter() - began
    assert spent["prepare"] < result.seconds <= wall
