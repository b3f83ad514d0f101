"""Storage encodings applied to a built graph: ONNX Runtime dynamic int8 quantization, and sparse weights.

Sparse weights (``bitmask``): a weight ``W`` with enough zeros is stored as its nonzero values in row-major order
(``W.values``) plus one bit per entry (``W.bits``, packed little-endian in uint8), and rebuilt by standard ops:

    bits → BitShift/Mod → bool mask → CumSum → Gather(values) → Where(mask, ·, 0) → Reshape → W

Every input of that subgraph is an initializer, so ONNX Runtime folds it into a plain dense initializer when the
session is created (graph optimization level basic or higher, the default): inference runs the same kernels as
the unencoded graph. A value costs its element size, a position 1/8 byte: float32 weights shrink from 4 bytes to
``4·d + 0.125`` bytes per entry at density ``d``. ONNX's own sparse initializers need int64 indices (12 bytes per
nonzero), which only pays below 1/3 density, and ONNX Runtime densifies them at load just the same.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ticketpack.errors import TicketpackError

ENCODABLE = {TensorProto.FLOAT: np.float32, TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8}
MIN_SAVING_BYTES = 512


def bitmask_encode(model: onnx.ModelProto, min_saving_bytes: int = MIN_SAVING_BYTES) -> list[str]:
    """Replace, in place, every weight initializer that gets smaller by the bitmask encoding; return their names."""
    graph = model.graph
    consumers = {name for node in graph.node for name in node.input}
    decode_nodes: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    encoded: list[str] = []
    shared: dict[str, onnx.TensorProto] = {}

    def const(name: str, array: np.ndarray) -> str:
        if name not in shared:
            shared[name] = numpy_helper.from_array(array, name)
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        decode_nodes.append(helper.make_node(op, inputs, [output], name=f"{output}/{op}", **attrs))
        return output

    keep = []
    for t in graph.initializer:
        array = numpy_helper.to_array(t) if t.data_type in ENCODABLE and t.name in consumers else None
        if array is None or array.size < 64:
            keep.append(t)
            continue
        flat = array.ravel()
        nonzero = flat != 0
        values = flat[nonzero]
        if values.size == 0:
            values = np.zeros(1, dtype=flat.dtype)  # Gather needs a non-empty table; every position is masked out
        bits = np.packbits(nonzero, bitorder="little")
        if array.nbytes - (values.nbytes + bits.nbytes) < max(min_saving_bytes, array.nbytes // 4):
            keep.append(t)
            continue
        n, name = flat.size, t.name
        new_inits += [numpy_helper.from_array(values, f"{name}.values"), numpy_helper.from_array(bits[:, None], f"{name}.bits")]
        zero = const(f"bitmask.zero_{array.dtype}", np.zeros((), dtype=array.dtype))
        shifted = node("BitShift", [f"{name}.bits", const("bitmask.shifts", np.arange(8, dtype=np.uint8)[None, :])],
                       f"{name}/shifted", direction="RIGHT")
        bit = node("Mod", [shifted, const("bitmask.two", np.array(2, dtype=np.uint8))], f"{name}/bit")
        flat_bits = node("Reshape", [bit, const("bitmask.flat", np.array([-1], dtype=np.int64))], f"{name}/flat_bits")
        bits_n = node("Slice", [flat_bits, const("bitmask.start", np.array([0], dtype=np.int64)),
                                const(f"bitmask.n_{n}", np.array([n], dtype=np.int64))], f"{name}/bits_n")
        mask = node("Cast", [bits_n], f"{name}/mask", to=TensorProto.BOOL)
        rank = node("CumSum", [node("Cast", [bits_n], f"{name}/ones", to=TensorProto.INT64),
                               const("bitmask.axis", np.array(0, dtype=np.int64))], f"{name}/rank")
        pos = node("Max", [node("Sub", [rank, const("bitmask.one", np.array(1, dtype=np.int64))], f"{name}/rank0"),
                           const("bitmask.zero_pos", np.array(0, dtype=np.int64))], f"{name}/pos")
        picked = node("Gather", [f"{name}.values", pos], f"{name}/picked", axis=0)
        dense = node("Where", [mask, picked, zero], f"{name}/dense")
        shape = const(f"bitmask.shape_{'x'.join(map(str, array.shape))}", np.array(array.shape, dtype=np.int64))
        node("Reshape", [dense, shape], name)
        encoded.append(name)
    if not encoded:
        return []
    del graph.initializer[:]
    graph.initializer.extend(keep + new_inits + list(shared.values()))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(decode_nodes + nodes)
    return encoded


def quantize_int8(model: onnx.ModelProto, op_types: tuple[str, ...], exclude: list[str] | None = None) -> onnx.ModelProto:
    """ONNX Runtime's dynamic quantization: int8 weights (symmetric, so pruned zeros stay zero), activations at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # quantize_dynamic logs advice about pre-processing on the root logger
    try:
        with tempfile.TemporaryDirectory(prefix="ticketpack-int8-") as tmp:
            src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
            onnx.save(model, str(src))
            quantize_dynamic(
                str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=list(op_types),
                nodes_to_exclude=exclude or [], extra_options={"WeightSymmetric": True, "MatMulConstBOnly": True},
            )
            quantized = onnx.load(str(dst))
            _symmetric_gather_tables(model, quantized)
            return quantized
    except Exception as exc:  # the quantizer raises plain exceptions for graphs it cannot handle
        raise TicketpackError(f"int8 quantization failed: {exc}") from None
    finally:
        logger.setLevel(level)


def _symmetric_gather_tables(float_model: onnx.ModelProto, model: onnx.ModelProto) -> None:
    """Re-quantize embedding tables as symmetric int8, in place.

    The dynamic quantizer stores a gathered table as asymmetric uint8, so a pruned 0.0 becomes its zero point (say
    124) and the table is no longer sparse. Symmetric int8 (zero point 0, scale max|w| / 127) keeps every pruned
    weight at 0, which the bitmask encoding can then drop; the dequantized values stay exact zeros either way.
    """
    floats = {t.name: t for t in float_model.graph.initializer}
    inits = {t.name: t for t in model.graph.initializer}
    users: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, set()).add(node.op_type)
    for name, t in inits.items():
        base = name.removesuffix("_quantized")
        if (base == name or t.data_type != TensorProto.UINT8 or base not in floats
                or users.get(name, set()) - {"Gather"} or f"{base}_zero_point" not in inits):
            continue
        w = numpy_helper.to_array(floats[base]).astype(np.float32)
        scale = np.float32(max(float(np.abs(w).max()), 1e-12) / 127.0)
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        t.CopyFrom(numpy_helper.from_array(q, name))
        inits[f"{base}_zero_point"].CopyFrom(numpy_helper.from_array(np.array(0, dtype=np.int8), f"{base}_zero_point"))
        inits[f"{base}_scale"].CopyFrom(numpy_helper.from_array(np.array(scale, dtype=np.float32), f"{base}_scale"))
