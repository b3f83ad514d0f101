"""Self-contained files (``ticketpack export --self-contained``), on the reading side (torch-free).

Such a file's graph starts with its input kind's preprocessing as ONNX nodes (``InputKind.raw_graph``): its one input,
``raw``, takes what a user has (strings, uint8 images (N, H, W, C), float64 table rows), its nodes end in the model's
input tensor (the card's ``input``, now inside the graph), and it answers ``logits``, ``probabilities`` (softmax of
the logits) and ``label`` (the class names, strings). The card says so (``export.self_contained``) and records the
raw input (``export.raw_input``). Paths that feed the model's input tensor themselves (evaluate, latency, memory)
run :func:`model_input_graph`, the same file cut at that tensor in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ticketpack.core.errors import TicketpackError

if TYPE_CHECKING:  # onnx is imported where a graph is read or cut, not by ticketpack.load itself
    import onnx

RAW_INPUT = "raw"
PROBABILITIES = "probabilities"
LABEL = "label"
# onnx.TensorProto's element types, by number (this module is imported without onnx)
_DTYPES = {1: "float32", 2: "uint8", 6: "int32", 7: "int64", 8: "string", 10: "float16", 11: "float64"}


def is_self_contained(card) -> bool:
    return card is not None and bool(card.export.self_contained)


def value_signature(vi: onnx.ValueInfoProto) -> tuple[str, list[int | str]]:
    """The dtype name and shape of a graph input or value (a dim without a size is "?"); validate reads every
    graph's input with it."""
    tt = vi.type.tensor_type
    dims = [d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else "?")
            for d in tt.shape.dim]
    return _DTYPES.get(tt.elem_type, f"onnx type {tt.elem_type}"), dims


def model_input_graph(model: onnx.ModelProto, input_name: str, output_name: str) -> onnx.ModelProto:
    """The part of a self-contained graph from the model's input tensor to ``output_name``: the nodes it needs, their
    initializers, and that tensor as the graph's input (its type from the raw nodes' last output)."""
    import onnx

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    if input_name not in producer:
        raise TicketpackError(f"the graph computes no tensor {input_name!r}: it is not a self-contained ticketpack file")
    inits = {t.name: t for t in graph.initializer}
    needed, stack, used = set(), [output_name], set()
    while stack:
        name = stack.pop()
        node = producer.get(name)
        if name == input_name or node is None or id(node) in needed:
            used.add(name)
            continue
        needed.add(id(node))
        stack.extend(n for n in node.input if n)
        stack.extend(_outer_names(node))
    nodes = [n for n in graph.node if id(n) in needed]
    input_vi = _input_type(model, input_name)
    outputs = [o for o in graph.output if o.name == output_name]
    cut = onnx.helper.make_graph(nodes, graph.name, [input_vi], outputs,
                                 [inits[n] for n in sorted(used) if n in inits])
    cut.sparse_initializer.extend(graph.sparse_initializer)
    out = onnx.helper.make_model(cut, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    out.metadata_props.extend(model.metadata_props)
    return out


def _outer_names(node: onnx.NodeProto) -> list[str]:
    """Names a node's subgraphs (If, Loop, Scan) read from the enclosing graph."""
    names = []
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            made = {o for n in sub.node for o in n.output} | {i.name for i in sub.input} | {t.name for t in sub.initializer}
            names += [i for n in sub.node for i in n.input if i and i not in made]
            names += [n for inner in sub.node for n in _outer_names(inner)]
    return names


def _input_type(model: onnx.ModelProto, name: str) -> onnx.ValueInfoProto:
    import onnx

    for vi in model.graph.value_info:
        if vi.name == name:
            return vi
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)


def check_raw_signature(model: onnx.ModelProto, card) -> str:
    """A self-contained graph's one input is the card's raw input, and it answers logits, probabilities and label."""
    want = card.export.raw_input
    if want is None:
        raise TicketpackError("the card says the file is self-contained but records no raw input")
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1 or inputs[0].name != want.name:
        raise TicketpackError(f"graph inputs are {[i.name for i in inputs]}, the card's raw input is {want.name!r}")
    dtype, dims = value_signature(inputs[0])
    if dtype != want.dtype or len(dims) != len(want.shape) or any(
            isinstance(w, int) and d != w for d, w in zip(dims[1:], want.shape[1:])):
        raise TicketpackError(f"graph input {want.name} is {dtype} {dims}, the card says {want.dtype} {want.shape}")
    outputs = {o.name for o in model.graph.output}
    missing = [n for n in (card.output_name, PROBABILITIES, LABEL) if n not in outputs]
    if missing:
        raise TicketpackError(f"a self-contained graph answers logits, probabilities and label; this one lacks {missing}")
    return f"{want.name} {dtype} {dims} → {card.output_name}, {PROBABILITIES}, {LABEL} ({len(card.label_names)} classes)"


def raw_smoke(card) -> np.ndarray:
    """Two valid raw inputs as a self-contained graph takes them."""
    prep = card.preprocessing
    return prep.raw_array(prep.smoke_inputs())
