"""int8 quantization, both kinds, with ONNX Runtime's quantizer (the names it gives stored weights are
:mod:`ticketpack.runtime.storage`'s, which reads them back).

Dynamic int8 (:func:`quantize_int8`, ``--quantize int8``) measures each activation's range at run time; static
int8 (:func:`quantize_static_int8`, ``int8-static``: ``quantize_static`` in QDQ form) fixes the ranges at export from examples the model was trained on, so inference skips that pass.
Weights, embedding tables included, are symmetric int8 per tensor (zero point 0), so pruned weights stay exact
zeros that the bit-mask encoding drops and that ``validate`` counts (per channel would need a zero point per row
there); activations are asymmetric uint8, the pair ONNX Runtime's x86 and ARM kernels fuse. The QDQ graph is
standard ONNX, DequantizeLinear(weight) → op ← DequantizeLinear(QuantizeLinear(x)), which ONNX Runtime fuses into
integer kernels at load (graph optimization level extended or higher, the default).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.runtime.storage import QUANTIZED, scale, zero_point

Method = Literal["minmax", "entropy", "percentile"]
_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}
BATCH = 64  # examples per calibration batch: the calibrators keep per-batch tensors, so bounded memory


def calibration_sample(split, samples: int, seed: int) -> np.ndarray:
    """Model input of ``samples`` rows of ``split`` (a :class:`ticketpack.data.Split`, or an array) drawn without
    replacement by ``seed`` (all of them when there are fewer), in order; only those rows are read."""
    n = len(split)
    rows = np.arange(n) if samples >= n else np.sort(np.random.default_rng(seed).choice(n, size=samples, replace=False))
    return split.batch(rows) if hasattr(split, "batch") else split[rows]


class _Batches(CalibrationDataReader):
    """The sample as the quantizer reads it: one ``{input: batch}`` per call, then None."""

    def __init__(self, x: np.ndarray, input_name: str):
        self._batches = iter([{input_name: x[i : i + BATCH]} for i in range(0, len(x), BATCH)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def quantize_static_int8(model: onnx.ModelProto, op_types: tuple[str, ...], exclude: list[str], sample: np.ndarray,
                         method: Method) -> onnx.ModelProto:
    """The QDQ int8 form of ``model`` (float, one input), its activation ranges calibrated on ``sample``."""
    reader = _Batches(sample, model.graph.input[0].name)
    inits = {t.name for t in model.graph.initializer}
    # a gathered table is quantized like an activation (uint8 with a zero point), which would fill its pruned rows
    tables = {n.input[0] for n in model.graph.node if n.op_type == "Gather" and n.input[0] in inits and n.name not in exclude}
    overrides = {name: [{"quant_type": QuantType.QInt8, "symmetric": True}] for name in sorted(tables)}
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # the quantizer logs advice about pre-processing on the root logger
    try:
        with tempfile.TemporaryDirectory(prefix="ticketpack-qdq-") as tmp:
            src, dst = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
            onnx.save(model, str(src))
            quantize_static(
                str(src), str(dst), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=list(op_types),
                nodes_to_exclude=exclude, per_channel=False, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, calibrate_method=_METHODS[method],
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, "TensorQuantOverrides": overrides},
            )
            return onnx.load(str(dst))
    except Exception as exc:  # the quantizer raises plain exceptions for graphs it cannot handle
        raise TicketpackError(f"static int8 quantization failed: {exc}") from None
    finally:
        logger.setLevel(level)


def quantize_int8(model: onnx.ModelProto, op_types: tuple[str, ...], exclude: list[str] | None = None) -> onnx.ModelProto:
    """ONNX Runtime's dynamic quantization: int8 weights (symmetric, so pruned zeros stay zero), activations at run time."""
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
        base = name.removesuffix(QUANTIZED)
        if (base == name or t.data_type != TensorProto.UINT8 or base not in floats
                or users.get(name, set()) - {"Gather"} or zero_point(base) not in inits):
            continue
        w = numpy_helper.to_array(floats[base]).astype(np.float32)
        step = np.float32(max(float(np.abs(w).max()), 1e-12) / 127.0)
        q = np.clip(np.rint(w / step), -127, 127).astype(np.int8)
        t.CopyFrom(numpy_helper.from_array(q, name))
        inits[zero_point(base)].CopyFrom(numpy_helper.from_array(np.array(0, dtype=np.int8), zero_point(base)))
        inits[scale(base)].CopyFrom(numpy_helper.from_array(np.array(step, dtype=np.float32), scale(base)))


# Dynamic int8 leaves convolutions float: ONNX Runtime runs a dynamically quantized Conv as ConvInteger, which was
# 2.3–6.4× slower than the float convolution on the dense convolutional models of bench/export_bench.py
# (docs/benchmarks.md, "Static int8 ..."); static int8 (QDQ) quantizes them with fused integer kernels instead.
DYNAMIC_OPS = ("MatMul", "Gather")


def dynamic_int8(model: onnx.ModelProto, exclude: list[str]) -> tuple[onnx.ModelProto, str | None]:
    """``quantize="int8"``: :func:`quantize_int8` of the MatMul and Gather weights, and a note when convolutions
    were left float; a model with nothing of those to quantize is refused, naming int8-static."""
    convs = sum(node.op_type == "Conv" for node in model.graph.node)
    what = "its convolution stays" if convs == 1 else f"its {convs} convolutions stay"
    why = (f"{what} float under dynamic int8 (ONNX Runtime's ConvInteger ran 2.3-6.4x slower than float "
           "convolutions in bench/export_bench.py)") if convs else ""
    quantized = quantize_int8(model, DYNAMIC_OPS, exclude)
    if not any(t.name.endswith(QUANTIZED) for t in quantized.graph.initializer):
        raise FieldError(f"`quantize` int8: dynamic int8 finds no MatMul or Gather weight to quantize in this model"
                         f"{'; ' + why if why else ''}; use `quantize` int8-static", fields=["quantize"])
    return quantized, (f"{why}; `quantize` int8-static quantizes convolutions too" if convs else None)
