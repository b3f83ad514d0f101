"""Any torch model → an ONNX graph: ``torch.onnx.export`` with a dynamic batch axis, then generic clean-ups.

The graph has one input ``input`` and one output ``logits``. ``route`` picks ``torch.onnx.export``'s exporter:
``torchscript`` (``dynamo=False``, the default; torch deprecates it, and ``tests/test_export_routes.py`` fails the
day it is gone) or ``dynamo`` (the ``torch.export`` route, through onnxscript). Both keep BatchNorm as a node, so
every stored weight is still the trained one; ONNX Runtime fuses Conv+BN and constant-folds transposes itself when
it loads the file. On torch 2.13 the dynamo route took 15-104× as long (0.6-2.0 s more per graph; one of the
eight built-in and example models fails it at opset 17), and it names buffers ``val_N`` (a compacted embedding's
id remap is still stored as bits, under that name): measured in ``bench/results/export_routes.md``
(``python bench/export_routes.py``).

Clean-ups that work on any graph:
- :func:`name_weights`: constant folding stores a transposed weight under a generated name
  (``onnx::MatMul_57``); it is renamed ``<param>.T`` (or ``<param>`` when stored as is), so that a reader maps every
  stored weight back to the model's parameter (``validate`` checks the card's sparsity against them).
- :func:`gemm_to_matmul`: ``Gemm(x, W, b, transB=1)`` → ``MatMul(x, W.T) + b``, the form ONNX Runtime's dynamic
  int8 quantizer handles (it has no integer Gemm) and fuses back into one kernel in float.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from ticketpack.core.errors import TicketpackError
from ticketpack.runtime.storage import transposed


@contextlib.contextmanager
def _quiet_stdout():
    """Silence file descriptor 1: on a failure the exporter dumps its whole TorchScript graph there from C++."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no real stdout (a test runner's capture): nothing to silence
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)


ROUTES = ("torchscript", "dynamo")


@contextlib.contextmanager
def _quiet_loggers(*names: str):
    """Raise these loggers to ERROR for the block (the dynamo route logs warnings a user cannot act on)."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def to_onnx(model: nn.Module, example: torch.Tensor, opset: int, route: str = "torchscript") -> onnx.ModelProto:
    """Export ``model`` (eval mode) on ``example`` through ``route`` (``torchscript``: ``dynamo=False``;
    ``dynamo``: the ``torch.export`` route); ``TicketpackError`` naming the op when torch.onnx cannot."""
    if route not in ROUTES:
        raise TicketpackError(f"route: {route!r} is not one of {', '.join(ROUTES)}")
    model.eval()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX form
    try:
        with warnings.catch_warnings(), _quiet_stdout():
            warnings.simplefilter("ignore")
            graph = _export_dynamo(model, example, opset) if route == "dynamo" else _export_torchscript(model, example, opset)
    except TicketpackError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TicketpackError(f"torch.onnx cannot export this model ({route} route): {first[:300]}") from None
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    _drop_identities(graph)
    return graph


def _export_torchscript(model: nn.Module, example: torch.Tensor, opset: int) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(
        model, (example,), buffer, dynamo=False, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
        training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True,
    )
    return onnx.load_from_string(buffer.getvalue())


def _export_dynamo(model: nn.Module, example: torch.Tensor, opset: int) -> onnx.ModelProto:
    try:
        import onnxscript  # noqa: F401  (the torch.export route translates through it)
    except ImportError:
        raise TicketpackError("route 'dynamo' needs onnxscript: pip install onnxscript") from None
    with contextlib.redirect_stdout(io.StringIO()), _quiet_loggers("torch.onnx", "torch.export", "onnxscript"):
        program = torch.onnx.export(  # it prints its progress and logs its opset conversion: both silenced
            model, (example,), dynamo=True, verbose=False, input_names=["input"], output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=opset, external_data=False,
            optimize=True,
        )
    graph = program.model_proto
    got = max((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if got != opset:  # it builds opset 18 and converts down, which fails for some graphs
        raise TicketpackError(f"the dynamo route made an opset {got} graph, not the opset {opset} asked for; ask for "
                              f"opset {got} or use route torchscript")
    if graph.graph.output and graph.graph.output[0].name != "logits":  # the names must be the card's
        raise TicketpackError(f"the exported graph's output is {graph.graph.output[0].name!r}, not 'logits'")
    return graph


def _drop_identities(model: onnx.ModelProto) -> None:
    """Remove ``Identity`` nodes over initializers (the exporter emits one per reused parameter)."""
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    alias: dict[str, str] = {}
    keep = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits and node.output[0] not in outputs:
            alias[node.output[0]] = node.input[0]
        else:
            keep.append(node)
    if not alias:
        return
    for node in keep:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    del graph.node[:]
    graph.node.extend(keep)


def _rename(model: onnx.ModelProto, old: str, new: str) -> None:
    for t in model.graph.initializer:
        if t.name == old:
            t.name = new
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def name_weights(model: onnx.ModelProto, params: dict[str, np.ndarray]) -> list[str]:
    """Give every stored copy of a parameter the parameter's name (``.T`` when transposed); return the names not
    found among the initializers."""
    inits = {t.name: t for t in model.graph.initializer}
    missing = []
    for name, value in params.items():
        if name in inits or transposed(name) in inits:
            continue
        found = None
        for init_name, t in inits.items():
            if init_name in params or tuple(t.dims) not in (value.shape, value.shape[::-1]):
                continue
            array = numpy_helper.to_array(t)
            if array.shape == value.shape and np.array_equal(array, value):
                found = (init_name, name)
            elif value.ndim == 2 and array.shape == value.T.shape and np.array_equal(array, value.T):
                found = (init_name, transposed(name))
            if found:
                break
        if found is None:
            missing.append(name)
            continue
        _rename(model, *found)
        inits[found[1]] = inits.pop(found[0])
    return missing


def gemm_to_matmul(model: onnx.ModelProto) -> None:
    """Rewrite, in place, ``Gemm(x, W, b)`` with a constant ``W`` (transB=1, alpha=beta=1) as ``MatMul`` + ``Add``."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    nodes = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        w = node.input[1] if node.op_type == "Gemm" and len(node.input) > 1 else None
        if (w is None or w not in inits or attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0
                or attrs.get("beta", 1.0) != 1.0):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[w])
        if attrs.get("transB", 0):
            name = transposed(w)
            if name not in inits:
                t = numpy_helper.from_array(np.ascontiguousarray(weight.T), name)
                graph.initializer.append(t)
                inits[name] = t
            w = name
        product = f"{node.output[0]}/matmul"
        nodes.append(helper.make_node("MatMul", [node.input[0], w], [product], name=f"{node.name}/MatMul"))
        if len(node.input) > 2 and node.input[2]:
            nodes.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}/Add"))
        else:
            nodes.append(helper.make_node("Identity", [product], [node.output[0]], name=f"{node.name}/Identity"))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
