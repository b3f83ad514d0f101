"""``ticketpack export --self-contained``: one ONNX file from what a user has to class names.

The input kind's preprocessing as ONNX nodes (:meth:`~ticketpack.data.kinds.base.InputKind.raw_graph`) is put in
front of the exported model graph: their last tensor is the model's input (``input``), the graph's one input is
``raw`` (strings, uint8 images (N, H, W, C), float64 table rows), and besides ``logits`` it answers
``probabilities`` (``Softmax``) and ``label`` (``ArgMax`` → ``Gather`` on a string initializer of the card's class
names: standard ops that onnxruntime 1.18 runs). The model's opset is raised to what the raw nodes need
(``onnx.version_converter``) when it is lower.

The parity gate (:func:`check_parity`): the composed graph, run on the raw rows of the whole test split, gives the
model input the Python featurizer gave (integers exactly, floats within the export's ``atol``) and the logits the
model graph gives on that input (within ``atol``); else :class:`~ticketpack.core.errors.GateFailed`, nothing written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from ticketpack.core.errors import FieldError, GateFailed, TicketpackError
from ticketpack.data.kinds.base import InputKind, RawGraph
from ticketpack.runtime.card import RawInput
from ticketpack.runtime.selfcontained import (
    LABEL,
    PROBABILITIES,
    RAW_INPUT,
    value_signature,
)

CHUNK = 1024  # raw rows per run in the parity gate


@dataclass(frozen=True)
class SelfContainedCheck:
    """What the parity gate measured on the test split."""

    rows: int
    input_max_abs_diff: float  # model input: composed graph against the Python featurizer (0 for integer ids)
    logits_max_abs_diff: float  # logits: composed graph on raw rows against the model graph on featurized ones


def raw_graph_of(prep: InputKind, input_name: str) -> RawGraph:
    """The kind's preprocessing as nodes, or one line saying why this model cannot be exported self-contained."""
    try:
        raw = prep.raw_graph(output=input_name)
    except TicketpackError as exc:
        raise FieldError(f"`self_contained`: {exc}; export without it", fields=["self_contained"]) from None
    if raw.output != input_name:
        raise TicketpackError(f"the {prep.kind} preprocessing nodes end in {raw.output!r}, not the model's {input_name!r}")
    return raw


def _names(graph: onnx.GraphProto) -> set[str]:
    names = {t.name for t in graph.initializer} | {i.name for i in graph.input} | {o.name for o in graph.output}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
        names.add(node.name)
    return names - {""}


def _raw_names(raw: RawGraph) -> set[str]:
    names = {t.name for t in raw.initializers} | {raw.input.name}
    for node in raw.nodes:
        names.update(node.output)
        names.add(node.name)
    return names - {"", raw.output}


def _raise_opset(model: onnx.ModelProto, needed: int) -> onnx.ModelProto:
    """The model at ai.onnx opset ``needed`` when it is lower; a one-line error naming `opset` when the converter
    cannot take it there."""
    have = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=needed)
    if have >= needed:
        return model
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(model, needed)
    except Exception as exc:  # the converter raises RuntimeError/ValueError/its own types for an op it cannot adapt
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise FieldError(f"the self-contained preprocessing needs ONNX opset {needed} but the model graph (opset "
                         f"{have}) cannot be converted to it ({first}); export with `opset` {needed}",
                         fields=["opset"]) from None
    converted.graph.ClearField("value_info")  # the converter's inferred shapes: inferred again when needed
    return converted


def _merge_opsets(model: onnx.ModelProto, opsets: dict[str, int]) -> None:
    have = {o.domain or "": o for o in model.opset_import}
    for domain, version in opsets.items():
        key = "" if domain == "ai.onnx" else domain
        if key in have:
            have[key].version = max(have[key].version, version)
        else:
            model.opset_import.append(helper.make_opsetid(key, version))
    model.ir_version = max(model.ir_version, helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True))


def _head_nodes(logits: str, labels: list[str]) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Softmax → probabilities; ArgMax → Gather over the class names → label."""
    classes = helper.make_tensor("label/classes", TensorProto.STRING, [len(labels)], [n.encode() for n in labels])
    nodes = [
        helper.make_node("Softmax", [logits], [PROBABILITIES], name="head/softmax", axis=1),
        helper.make_node("ArgMax", [logits], ["label/index"], name="head/argmax", axis=1, keepdims=0),
        helper.make_node("Gather", ["label/classes", "label/index"], [LABEL], name="head/label", axis=0),
    ]
    return nodes, [classes]


def compose(model: onnx.ModelProto, raw: RawGraph, labels: list[str], input_name: str = "input",
            logits: str = "logits") -> onnx.ModelProto:
    """The self-contained graph: ``raw`` → the raw nodes → ``input_name`` → the model → logits, probabilities, label."""
    needed = max([v for d, v in raw.opsets.items() if d in ("", "ai.onnx")], default=0)
    model = _raise_opset(model, needed)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    taken = _names(graph)
    clash = sorted((_raw_names(raw) | {PROBABILITIES, LABEL, "label/classes", "label/index", "head/softmax",
                                       "head/argmax", "head/label"}) & taken)
    if clash:
        raise TicketpackError(f"the preprocessing nodes' names {clash[:3]} are taken in the model graph")
    model_in = [i for i in graph.input if i.name == input_name]
    if not model_in or logits not in {o.name for o in graph.output}:
        raise TicketpackError(f"the model graph has no input {input_name!r} or no output {logits!r}")
    head, head_inits = _head_nodes(logits, labels)
    kept = [i for i in graph.input if i.name != input_name]
    graph.ClearField("input")
    graph.input.extend([raw.input, *kept])
    graph.value_info.append(model_in[0])  # the model input's type, for readers that cut the graph there
    nodes = [*raw.nodes, *graph.node, *head]
    graph.ClearField("node")
    graph.node.extend(nodes)
    graph.initializer.extend([*raw.initializers, *head_inits])
    n = len(labels)
    graph.output.extend([helper.make_tensor_value_info(PROBABILITIES, TensorProto.FLOAT, ["batch", n]),
                         helper.make_tensor_value_info(LABEL, TensorProto.STRING, ["batch"])])
    _merge_opsets(out, raw.opsets)
    # every tensor's type stored: onnx releases that do not know the contrib ops (1.16) cannot infer past them, and
    # 1.16's checker crashes on a DequantizeLinear whose input has no type (a quantized text model)
    return onnx.shape_inference.infer_shapes(out)


def raw_input_of(model: onnx.ModelProto) -> RawInput:
    """The card's record of a composed graph's raw input."""
    vi = next(i for i in model.graph.input if i.name == RAW_INPUT)
    dtype, dims = value_signature(vi)
    return RawInput(name=RAW_INPUT, dtype=dtype, shape=["batch", *dims[1:]])


def _probe(composed: onnx.ModelProto, input_name: str) -> onnx.ModelProto:
    """A copy of the composed graph that also answers its model input tensor."""
    probe = onnx.ModelProto()
    probe.CopyFrom(composed)
    vi = next(v for v in probe.graph.value_info if v.name == input_name)
    probe.graph.output.append(vi)
    return probe


def check_parity(composed: onnx.ModelProto, prep: InputKind, raw_rows: Any, x_test: np.ndarray,
                 reference: np.ndarray, atol: float, threads: int | None, input_name: str = "input",
                 logits: str = "logits") -> SelfContainedCheck:
    """The composed graph on the raw test rows against the Python featurizer (``x_test``) and against
    ``reference``, the model graph's logits on ``x_test`` (which export has already run)."""
    from ticketpack.export.graphs import ort_session

    session = ort_session(_probe(composed, input_name).SerializeToString(), threads)
    n = len(x_test)
    if len(raw_rows) != n:
        raise GateFailed(f"self-contained parity: {len(raw_rows)} raw test rows for {n} featurized ones; nothing written")
    exact = np.issubdtype(x_test.dtype, np.integer)
    input_diff = logits_diff = 0.0
    for i in range(0, n, CHUNK):
        try:
            raw = prep.raw_array(raw_rows[i : i + CHUNK])
            got_x, got_logits = session.run([input_name, logits], {RAW_INPUT: raw})
        except Exception as exc:  # a row the raw nodes or ONNX Runtime refuse: the graph does not cover the split
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise GateFailed(f"self-contained parity: the graph cannot run test rows {i}..{min(i + CHUNK, n) - 1} "
                             f"({first}); nothing written") from None
        want_x = x_test[i : i + CHUNK]
        if got_x.shape != want_x.shape or (exact and not np.array_equal(got_x, want_x)):
            bad = _first_difference(got_x, want_x)
            raise GateFailed(f"self-contained parity: the graph's model input differs from the Python featurizer's "
                             f"(test row {i + bad}); nothing written")
        if not exact:
            input_diff = max(input_diff, float(np.abs(got_x.astype(np.float64) - want_x).max(initial=0)))
        logits_diff = max(logits_diff, float(np.abs(got_logits - reference[i : i + CHUNK]).max(initial=0)))
    if not (input_diff <= atol and logits_diff <= atol):
        what = "model input" if not input_diff <= atol else "logits"
        raise GateFailed(f"self-contained parity: the graph's {what} differ from the Python featurizer + model graph "
                         f"by {max(input_diff, logits_diff):.2e} > atol {atol:g} on the test split; nothing written")
    return SelfContainedCheck(rows=n, input_max_abs_diff=input_diff, logits_max_abs_diff=logits_diff)


def _first_difference(got: np.ndarray, want: np.ndarray) -> int:
    if got.shape[:1] != want.shape[:1]:
        return 0
    rows = np.flatnonzero((got.reshape(len(got), -1) != want.reshape(len(want), -1)).any(axis=1)) \
        if got.shape == want.shape else np.arange(1)
    return int(rows[0]) if len(rows) else 0


def make_self_contained(model: onnx.ModelProto, prep: InputKind, labels: list[str], raw_rows: Any,
                        x_test: np.ndarray, reference: np.ndarray, atol: float,
                        threads: int | None) -> tuple[onnx.ModelProto, SelfContainedCheck]:
    """Compose and gate: the self-contained graph of a checked model graph (whose logits on ``x_test`` are
    ``reference``), and what its parity gate measured."""
    from ticketpack.export.graphs import check_graph

    raw = raw_graph_of(prep, "input")
    composed = compose(model, raw, labels)
    check_graph(composed, "self-contained")
    return composed, check_parity(composed, prep, raw_rows, x_test, reference, atol, threads)
