"""How an exported graph stores a weight, written once: the names, the encodings (int8 quantization, sparse bit
masks) and the decoding back to one array per weight (torch-free).

A prunable weight ``w`` is stored as the initializer ``w``, or ``w.T`` when a linear layer's weight is kept
transposed (:func:`transposed`); int8 quantization renames it ``<stored>_quantized`` with ``<stored>_zero_point`` and
``<stored>_scale`` beside it; the bit-mask encoding replaces an initializer ``x`` by ``x.values`` + ``x.bits``.
:func:`stored_weight` finds a weight in any of these forms.

Sparse weights (``bitmask``): a weight ``W`` with enough zeros is stored as a 0 followed by its nonzero values in
row-major order (``W.values``) plus one bit per entry (``W.bits``, packed little-endian in uint8), and rebuilt by
standard ops:

    bits → BitShift/Mod (uint8) → Cast → CumSum · bit (int64: the rank of each kept entry, 0 for a pruned one)
         → Gather(values) → Reshape → W

The stored type (float32, int8, uint8) only passes through Gather and Reshape, whose kernels take every type in
every ONNX Runtime release; the arithmetic is on uint8 and int64, which they all implement (the previous
decoding's ``Where`` on int8 has no kernel in onnxruntime 1.30 and older). Every input of that subgraph is an
initializer, so ONNX Runtime folds it into a plain dense initializer when the session is created (graph
optimization level basic or higher, the default): inference runs the same kernels as the unencoded graph. A value
costs its element size, a position 1/8 byte: float32 weights shrink from 4 bytes to ``4·d + 0.125`` bytes per
entry at density ``d``. ONNX's own sparse initializers need int64 indices (12 bytes per
nonzero), which only pays below 1/3 density, and ONNX Runtime densifies them at load just the same.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ticketpack.core.errors import TicketpackError

TRANSPOSED = ".T"
QUANTIZED = "_quantized"


def transposed(name: str) -> str:
    """The initializer name of weight ``name`` stored transposed (and back: ``transposed(transposed(w)) == w``)."""
    return name[: -len(TRANSPOSED)] if name.endswith(TRANSPOSED) else name + TRANSPOSED


def zero_point(base: str) -> str:
    return base + "_zero_point"


def scale(base: str) -> str:
    return base + "_scale"


def bitmask_parts(name: str) -> tuple[str, str]:
    """The two initializers that replace a bit-mask encoded ``name``: its nonzero values and its packed bits."""
    return name + ".values", name + ".bits"


ENCODABLE = {TensorProto.FLOAT: np.float32, TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8}
MIN_SAVING_BYTES = 512


class _Decoder:
    """Decode nodes and their constants, added in front of a graph's nodes in one go (:meth:`apply`). Constants are
    shared by name, with those already in the graph (an encoding that ran before) as with each other."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.present = {t.name for t in graph.initializer}
        self.nodes: list[onnx.NodeProto] = []
        self.constants: dict[str, onnx.TensorProto] = {}

    def const(self, name: str, array: np.ndarray) -> str:
        if name not in self.constants and name not in self.present:
            self.constants[name] = numpy_helper.from_array(array, name)
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=f"{output}/{op}", **attrs))
        return output

    def apply(self, keep: list[onnx.TensorProto], new: list[onnx.TensorProto]) -> None:
        """The graph's initializers become ``keep`` + ``new`` + the constants, its nodes the decoding + its own."""
        del self.graph.initializer[:]
        self.graph.initializer.extend(keep + new + list(self.constants.values()))
        nodes = list(self.graph.node)
        del self.graph.node[:]
        self.graph.node.extend(self.nodes + nodes)


def _bitmask_parts(t: onnx.TensorProto, consumers: set[str],
                   min_saving_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(the array, its values with the leading 0, its packed bits) of an initializer the bitmask encoding makes
    smaller by at least a quarter and ``min_saving_bytes``; None for any other."""
    array = numpy_helper.to_array(t) if t.data_type in ENCODABLE and t.name in consumers else None
    if array is None or array.size < 64:
        return None
    flat = array.ravel()
    nonzero = flat != 0
    saved = array.nbytes - (int(nonzero.sum()) + 1) * flat.dtype.itemsize - (flat.size + 7) // 8
    if saved < max(min_saving_bytes, array.nbytes // 4):
        return None
    values = np.concatenate([np.zeros(1, dtype=flat.dtype), flat[nonzero]])  # index 0: every pruned entry
    return array, values, np.packbits(nonzero, bitorder="little")


def bitmask_candidates(model: onnx.ModelProto, min_saving_bytes: int = MIN_SAVING_BYTES) -> list[str]:
    """The initializers :func:`bitmask_encode` would encode, leaving ``model`` as it is."""
    consumers = {name for node in model.graph.node for name in node.input}
    return [t.name for t in model.graph.initializer if _bitmask_parts(t, consumers, min_saving_bytes) is not None]


def bitmask_encode(model: onnx.ModelProto, min_saving_bytes: int = MIN_SAVING_BYTES) -> list[str]:
    """Replace, in place, every weight initializer that gets smaller by the bitmask encoding; return their names
    (none when no weight has enough zeros: the graph is then left as it was)."""
    graph = model.graph
    consumers = {name for node in graph.node for name in node.input}
    dec = _Decoder(graph)
    const, node = dec.const, dec.node
    new_inits: list[onnx.TensorProto] = []
    encoded: list[str] = []
    keep = []
    for t in graph.initializer:
        parts = _bitmask_parts(t, consumers, min_saving_bytes)
        if parts is None:
            keep.append(t)
            continue
        array, values, bits = parts
        n, name = array.size, t.name
        values_name, bits_name = bitmask_parts(name)
        new_inits += [numpy_helper.from_array(values, values_name), numpy_helper.from_array(bits[:, None], bits_name)]
        pos = _rank_nodes(node, const, bits_name, n, name)
        dense = node("Gather", [values_name, pos], f"{name}/dense", axis=0)
        shape = const(f"bitmask.shape_{'x'.join(map(str, array.shape))}", np.array(array.shape, dtype=np.int64))
        node("Reshape", [dense, shape], name)
        encoded.append(name)
    if encoded:
        dec.apply(keep, new_inits)
    return encoded


def _rank_nodes(node, const, bits_name: str, n: int, name: str) -> str:
    """Nodes turning ``n`` packed bits into each entry's rank among the set bits (1, 2, ...; 0 where unset), int64."""
    shifted = node("BitShift", [bits_name, const("bitmask.shifts", np.arange(8, dtype=np.uint8)[None, :])],
                   f"{name}/shifted", direction="RIGHT")
    bit = node("Mod", [shifted, const("bitmask.two", np.array(2, dtype=np.uint8))], f"{name}/bit")
    flat_bits = node("Reshape", [bit, const("bitmask.flat", np.array([-1], dtype=np.int64))], f"{name}/flat_bits")
    bits_n = node("Slice", [flat_bits, const("bitmask.start", np.array([0], dtype=np.int64)),
                            const(f"bitmask.n_{n}", np.array([n], dtype=np.int64))], f"{name}/bits_n")
    ones = node("Cast", [bits_n], f"{name}/ones", to=TensorProto.INT64)
    rank = node("CumSum", [ones, const("bitmask.axis", np.array(0, dtype=np.int64))], f"{name}/rank")
    return node("Mul", [rank, ones], f"{name}/pos")


RANK_TYPES = (TensorProto.UINT8, TensorProto.UINT16, TensorProto.INT32, TensorProto.INT64)


def rank_encode(model: onnx.ModelProto, min_saving_bytes: int = MIN_SAVING_BYTES) -> list[str]:
    """Replace, in place, every 1-D integer table whose nonzero entries are 1, 2, ..., k in order (the id remap
    of a compacted embedding: kept id → its row) by its bits alone (``<name>.bits``): the ranks are the table, so
    no value is stored. A 2^20-id remap shrinks from 4 MB (int32) to 128 KB, rebuilt by the bitmask decoding's
    rank nodes (then a Cast back to the table's type) and folded at load like it. Returns the names encoded."""
    graph = model.graph
    dec = _Decoder(graph)  # shares the bitmask encoding's constants, if it ran: the same arrays
    const, node = dec.const, dec.node
    keep, new_inits, encoded = [], [], []
    for t in graph.initializer:
        array = numpy_helper.to_array(t) if t.data_type in RANK_TYPES and len(t.dims) == 1 else None
        nonzero = array != 0 if array is not None else None
        if (array is None or array.nbytes < min_saving_bytes
                or not np.array_equal(array[nonzero], np.arange(1, int(nonzero.sum()) + 1))):
            keep.append(t)
            continue
        name, bits_name = t.name, bitmask_parts(t.name)[1]
        new_inits.append(numpy_helper.from_array(np.packbits(nonzero, bitorder="little")[:, None], bits_name))
        pos = _rank_nodes(node, const, bits_name, array.size, name)
        if t.data_type == TensorProto.INT64:
            node("Identity", [pos], name)
        else:
            node("Cast", [pos], name, to=t.data_type)
        encoded.append(name)
    if encoded:
        dec.apply(keep, new_inits)
    return encoded


def stored_weight(arrays: dict[str, np.ndarray], name: str, shape: list[int]) -> tuple[str, np.ndarray, bool] | None:
    """Find weight ``name`` (of ``shape`` as exported) among a graph's initializers in any of the storage forms above;
    return (initializer name, its stored values with any bit mask decoded, whether it is int8-quantized), or None.

    A quantized weight's values are its int8/uint8 codes: one is "zero" when it equals the zero point (see
    :func:`nonzero_count`).
    """
    size = int(np.prod(shape))
    for base in (name, transposed(name)):
        for suffix in ("", QUANTIZED):
            key = base + suffix
            values_name, bits_name = bitmask_parts(key)
            if key in arrays:
                stored = arrays[key]
                if list(stored.shape) not in (list(shape), list(shape)[::-1]):
                    raise TicketpackError(f"{name}: stored shape {list(stored.shape)}, card says {shape}")
            elif bits_name in arrays and values_name in arrays:
                bits = np.unpackbits(arrays[bits_name].astype(np.uint8).ravel(), bitorder="little")
                values = arrays[values_name].ravel()
                if bits.size < size:
                    raise TicketpackError(f"{name}: bit mask has {bits.size} bits for {size} weights")
                mask = bits[:size].astype(bool)
                count = int(mask.sum())
                if values.size < count:
                    raise TicketpackError(f"{name}: {values.size} stored values for {count} set bits")
                stored = np.zeros(size, dtype=values.dtype)
                # the last `count` values: after the leading 0 (earlier exports stored none)
                stored[mask] = values[values.size - count :]
            else:
                continue
            return key, stored, bool(suffix)
    return None


def nonzero_count(arrays: dict[str, np.ndarray], name: str, shape: list[int]) -> tuple[str, int, bool] | None:
    """(initializer name, non-zero weights, whether int8-quantized) of weight ``name`` as stored, or None."""
    found = stored_weight(arrays, name, shape)
    if found is None:
        return None
    key, stored, quantized = found
    if not quantized:
        return key, int(np.count_nonzero(stored)), False
    zero = np.ravel(arrays.get(zero_point(key.removesuffix(QUANTIZED)), np.zeros(1, dtype=np.int64)))
    if zero.size != 1:
        raise TicketpackError(f"{name}: per-channel quantization; its sparsity cannot be checked here")
    return key, int(np.count_nonzero(stored.astype(np.int64) != int(zero[0]))), True
