"""ONNX graphs for each ticketpack architecture, built directly with ``onnx.helper`` (numpy weights in, no torch).

Every graph has one input ``input`` (float32 (batch, C, H, W) images or int64 (batch, max_tokens) token ids) and
one output ``logits`` (batch, classes); the batch axis is dynamic. Linear layers are ``MatMul`` + ``Add`` on a
transposed weight (``<name>.T``), which ONNX Runtime fuses into Gemm and which its dynamic int8 quantization
understands. The same builder takes full or compacted weights, so ``dense`` and ``compact`` differ only in shapes,
plus a ``Gather`` of kept input features or a token-id remap when compaction dropped inputs.

``layer_macs`` gives the multiply-accumulates per example of each prunable layer for given weight shapes (the
embedding "MACs" are the additions of its token lookups), the physical reference for speed-ups.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ticketpack.data.preprocessing import ImagePreprocessing, TextPreprocessing
from ticketpack.errors import TicketpackError

Weights = dict[str, np.ndarray]


class GraphBuilder:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, np.ndarray] = {}
        self._n = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def init(self, name: str, array: np.ndarray) -> str:
        if name in self.initializers:
            raise ValueError(f"initializer {name} defined twice")
        self.initializers[name] = np.ascontiguousarray(array)
        return name

    def const(self, value, dtype) -> str:
        """A small constant (shared by value)."""
        array = np.asarray(value, dtype=dtype)
        name = f"const_{array.dtype}_{'x'.join(map(str, array.shape)) or 's'}_{'_'.join(str(v) for v in array.ravel())}"
        name = name.replace("-", "m").replace(".", "p")
        if name not in self.initializers:
            self.initializers[name] = array
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, out: str | None = None, **attrs) -> str:
        output = out or self.fresh(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=self.fresh(op_type), **attrs))
        return output

    def reduce(self, op_type: str, x: str, axes: list[int], keepdims: int, out: str | None = None) -> str:
        # ReduceSum takes axes as an input from opset 13, the other reductions from opset 18
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.const(axes, np.int64)], out=out, keepdims=keepdims)
        return self.op(op_type, [x], out=out, axes=axes, keepdims=keepdims)

    def linear(self, x: str, name: str, w: Weights, out: str | None = None) -> str:
        """``x @ W.T + b`` for a torch Linear layer ``name`` (weight (out, in) → initializer ``name.weight.T``)."""
        wt = self.init(f"{name}.weight.T", w[f"{name}.weight"].T)
        y = self.op("MatMul", [x, wt], hint=f"{name}_matmul")
        return self.op("Add", [y, self.init(f"{name}.bias", w[f"{name}.bias"])], out=out, hint=name)

    def model(self, graph_name: str, input_type: int, input_shape: list, num_classes: int) -> onnx.ModelProto:
        inits = [numpy_helper.from_array(a, n) for n, a in self.initializers.items()]
        graph = helper.make_graph(
            self.nodes, graph_name,
            [helper.make_tensor_value_info("input", input_type, ["batch", *input_shape])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes])],
            inits,
        )
        opsets = [helper.make_opsetid("", self.opset)]
        return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


def _remap_ids(b: GraphBuilder, ids: str, kept: np.ndarray | None, vocab: int) -> str:
    """Token ids → rows of a compacted table: kept row ``kept[i]`` → ``i + 1``; dropped rows → 0 (a zero row)."""
    if kept is None:
        return ids
    table = np.zeros(vocab, dtype=np.int32)
    table[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return b.op("Gather", [b.init("embed.remap", table), ids], hint="rows", axis=0)


def _table(w: Weights, kept: np.ndarray | None) -> np.ndarray:
    """The embedding table as stored: with a leading zero row when compaction dropped rows."""
    table = w["embed.weight"]
    if kept is None:
        return table
    return np.concatenate([np.zeros((1, table.shape[1]), np.float32), table])


# ---------------------------------------------------------------- architectures


def mlp(b: GraphBuilder, w: Weights, kept_inputs: dict[str, np.ndarray], prep, options: dict) -> None:
    x = b.op("Flatten", ["input"], hint="flat", axis=1)
    if "hidden.0.weight" in kept_inputs:
        x = b.op("Gather", [x, b.init("input.kept", kept_inputs["hidden.0.weight"].astype(np.int64))], hint="kept", axis=1)
    i = 0
    while f"hidden.{i}.weight" in w:
        x = b.op("Relu", [b.linear(x, f"hidden.{i}", w)], hint=f"hidden{i}_relu")
        i += 1
    b.linear(x, "out", w, out="logits")


def bow(b: GraphBuilder, w: Weights, kept_inputs: dict[str, np.ndarray], prep: TextPreprocessing, options: dict) -> None:
    kept = kept_inputs.get("embed.weight")
    rows = _remap_ids(b, "input", kept, prep.num_buckets)
    emb = b.op("Gather", [b.init("embed.weight", _table(w, kept)), rows], hint="embedded", axis=0)
    summed = b.reduce("ReduceSum", emb, [1], keepdims=0)
    present = b.op("Cast", [b.op("Greater", ["input", b.const(0, np.int64)])], hint="present", to=TensorProto.FLOAT)
    count = b.op("Max", [b.reduce("ReduceSum", present, [1], keepdims=1), b.const(1.0, np.float32)], hint="count")
    mean = b.op("Div", [summed, count], hint="mean")
    hidden = b.op("Relu", [b.linear(mean, "fc", w)], hint="fc_relu")
    b.linear(hidden, "out", w, out="logits")


def convnet(b: GraphBuilder, w: Weights, kept_inputs: dict[str, np.ndarray], prep, options: dict) -> None:
    x = "input"
    for name in ("conv1", "conv2"):
        conv = b.op("Conv", [x, b.init(f"{name}.weight", w[f"{name}.weight"]), b.init(f"{name}.bias", w[f"{name}.bias"])],
                    hint=name, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        x = b.op("Relu", [conv], hint=f"{name}_relu")
    x = b.op("MaxPool", [x], hint="pool", kernel_shape=[2, 2], strides=[2, 2])
    x = b.op("Flatten", [x], hint="flat", axis=1)
    x = b.op("Relu", [b.linear(x, "fc", w)], hint="fc_relu")
    b.linear(x, "out", w, out="logits")


def textcnn(b: GraphBuilder, w: Weights, kept_inputs: dict[str, np.ndarray], prep: TextPreprocessing, options: dict) -> None:
    kept = kept_inputs.get("embed.weight")
    rows = _remap_ids(b, "input", kept, prep.num_buckets)
    emb = b.op("Gather", [b.init("embed.weight", _table(w, kept)), rows], hint="embedded", axis=0)
    x = b.op("Transpose", [emb], hint="channels_first", perm=[0, 2, 1])
    pooled, i = [], 0
    while f"convs.{i}.weight" in w:
        k = w[f"convs.{i}.weight"]
        conv = b.op("Conv", [x, b.init(f"convs.{i}.weight", k), b.init(f"convs.{i}.bias", w[f"convs.{i}.bias"])],
                    hint=f"conv{i}", kernel_shape=[k.shape[2]])
        pooled.append(b.reduce("ReduceMax", b.op("Relu", [conv], hint=f"conv{i}_relu"), [2], keepdims=0))
        i += 1
    b.linear(b.op("Concat", pooled, hint="features", axis=1), "out", w, out="logits")


def _bow_prepare(w: Weights) -> Weights:
    # the padding row never counts (the model masks it out), so it is stored as zeros
    w = dict(w)
    table = w["embed.weight"].copy()
    table[0] = 0.0
    w["embed.weight"] = table
    return w


def _mlp_macs(shapes: dict[str, tuple], prep) -> dict[str, int]:
    return {n: int(np.prod(s)) for n, s in shapes.items() if n.endswith(".weight")}


def _bow_macs(shapes: dict[str, tuple], prep: TextPreprocessing) -> dict[str, int]:
    return {
        "embed.weight": prep.max_tokens * shapes["embed.weight"][1],
        "fc.weight": int(np.prod(shapes["fc.weight"])),
        "out.weight": int(np.prod(shapes["out.weight"])),
    }


def _convnet_macs(shapes: dict[str, tuple], prep: ImagePreprocessing) -> dict[str, int]:
    hw = prep.height * prep.width
    return {
        "conv1.weight": hw * int(np.prod(shapes["conv1.weight"])),
        "conv2.weight": hw * int(np.prod(shapes["conv2.weight"])),
        "fc.weight": int(np.prod(shapes["fc.weight"])),
        "out.weight": int(np.prod(shapes["out.weight"])),
    }


def _textcnn_macs(shapes: dict[str, tuple], prep: TextPreprocessing) -> dict[str, int]:
    t = prep.max_tokens
    out = {"embed.weight": t * shapes["embed.weight"][1], "out.weight": int(np.prod(shapes["out.weight"]))}
    for n, s in shapes.items():
        if n.startswith("convs.") and n.endswith(".weight"):
            out[n] = (t - s[2] + 1) * int(np.prod(s))
    return out


class Lowering:
    def __init__(self, build: Callable, macs: Callable, prepare: Callable[[Weights], Weights] | None = None,
                 quantize_ops: tuple[str, ...] = ("MatMul",)) -> None:
        self.build, self.macs, self.prepare, self.quantize_ops = build, macs, prepare or (lambda w: w), quantize_ops


LOWERINGS: dict[str, Lowering] = {
    "lenet-300-100": Lowering(mlp, _mlp_macs),
    "bow": Lowering(bow, _bow_macs, _bow_prepare, ("MatMul", "Gather")),
    "convnet": Lowering(convnet, _convnet_macs, quantize_ops=("MatMul", "Conv")),
    "textcnn": Lowering(textcnn, _textcnn_macs, quantize_ops=("MatMul", "Gather", "Conv")),
}


def lowering(model_name: str) -> Lowering:
    if model_name not in LOWERINGS:
        raise TicketpackError(f"export does not know model {model_name!r}; it exports: {', '.join(sorted(LOWERINGS))}")
    return LOWERINGS[model_name]


def build_graph(model_name: str, weights: Weights, kept_inputs: dict[str, np.ndarray], prep, num_classes: int,
                opset: int, options: dict | None = None) -> onnx.ModelProto:
    """The ONNX model (no card yet) for ``weights`` (already prepared and, for compact, compacted)."""
    b = GraphBuilder(opset)
    lowering(model_name).build(b, weights, kept_inputs, prep, options or {})
    if prep.kind == "image":
        return b.model(model_name, TensorProto.FLOAT, list(prep.input_shape), num_classes)
    return b.model(model_name, TensorProto.INT64, [prep.max_tokens], num_classes)
