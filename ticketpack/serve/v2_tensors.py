"""Open Inference Protocol tensors ↔ what a served model takes and gives: each model's input signature, a request's
input tensor (JSON data or the binary tensor data extension) → raw inputs for the model's predictor, and labels,
probabilities and logits → output tensors. Every refusal is a :class:`V2Error` with a 4xx status."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
from starlette.exceptions import HTTPException

from ticketpack.serve.models import ServedModel
from ticketpack.serve.v2_api import InferRequest, RequestInput

NUMPY = {"UINT8": np.dtype("uint8"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
OUTPUTS = ("label", "probabilities", "logits")
DEFAULT_OUTPUTS = ("label", "probabilities")


class V2Error(HTTPException):
    """An answer in the protocol's error format, ``{"error": message}``. An HTTPException, so that FastAPI passes it
    on unchanged when it is raised while the body is read."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.message = message


@dataclass(frozen=True)
class Signature:
    """What a model's one input takes: its name, the datatypes accepted (the first is the one advertised) and its
    shape (-1: any size)."""

    name: str
    datatypes: tuple[str, ...]
    shape: tuple[int, ...]
    layout: str  # said in shape errors

    @classmethod
    def of(cls, model: ServedModel) -> Signature:
        pre = model.predictor.card.preprocessing
        if model.takes_text:
            return cls("text", ("BYTES",), (-1,), "(N)")
        if pre.kind == "image":
            c, h, w = pre.input_shape
            side = (-1, -1) if getattr(pre, "resize", None) is not None else (h, w)
            # a self-contained file taking 8-bit pixels advertises UINT8 (it refuses pixels that are not 0-255)
            eight_bit = getattr(model.predictor, "self_contained", False) and getattr(pre, "raw_dtype", "") == "uint8"
            types = ("UINT8", "FP32", "FP64") if eight_bit else ("FP32", "UINT8", "FP64")
            return cls("image", types, (-1, *side, c), "(N, H, W, C)")
        return cls("input", ("FP32", "FP64"), (-1, *pre.input_shape), "(N, features)")

    @property
    def datatype_words(self) -> str:
        *rest, last = self.datatypes
        return f"{', '.join(rest)} or {last}" if rest else last

    def check_shape(self, model: str, shape: list[int]) -> None:
        text = self.datatypes == ("BYTES",)
        fits = (len(shape) >= 1 and all(d == 1 for d in shape[1:])) if text else (
            len(shape) == len(self.shape) and all(w in (-1, d) for w, d in zip(self.shape[1:], shape[1:])))
        if not fits:
            raise V2Error(400, f"input {self.name!r} has shape {list(shape)}; model {model!r} takes "
                          f"{list(self.shape)} {self.layout}")


def binary_parts(req: InferRequest, binary: bytes) -> dict[int, bytes]:
    """The binary tensor data of each input that has some (by the input's index), cut from ``binary`` in order."""
    parts, at = {}, 0
    for i, tensor in enumerate(req.inputs):
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if type(size) is not int or size < 0 or at + size > len(binary):
            raise V2Error(400, f"input {tensor.name!r}: binary_data_size {size!r} does not fit the {len(binary)} "
                          "bytes after the JSON header")
        parts[i], at = binary[at:at + size], at + size
    if at != len(binary):
        raise V2Error(400, f"{len(binary) - at} bytes after the JSON header belong to no input's binary_data_size")
    return parts


def decode(tensor: RequestInput, binary: bytes | None, model: str, sig: Signature) -> np.ndarray | list[str]:
    """One input tensor → raw inputs: texts, or an array of ``shape`` (numbers), checked against ``sig``."""
    if tensor.name != sig.name:
        raise V2Error(400, f"model {model!r} has no input {tensor.name!r}; its input is {sig.name!r}")
    if tensor.datatype not in sig.datatypes:
        raise V2Error(400, f"input {sig.name!r} is {tensor.datatype}; model {model!r} takes {sig.datatype_words}")
    sig.check_shape(model, tensor.shape)
    count = math.prod(tensor.shape)
    if count == 0:
        raise V2Error(400, f"input {sig.name!r} has shape {tensor.shape}: give at least one input")
    if tensor.datatype == "BYTES":
        texts = _texts(binary, sig.name) if binary is not None else _json_texts(tensor, sig.name)
        _check_count(sig.name, tensor.shape, count, len(texts))
        return texts
    dtype = NUMPY[tensor.datatype]
    if binary is not None:
        if len(binary) != count * dtype.itemsize:
            raise V2Error(400, f"input {sig.name!r} has shape {tensor.shape}: {count} {tensor.datatype} values, "
                          f"{count * dtype.itemsize} bytes; its binary data has {len(binary)} bytes")
        x = np.frombuffer(binary, dtype=dtype)
    else:
        x = _json_numbers(tensor, dtype, sig.name)
        _check_count(sig.name, tensor.shape, count, len(x))
    return x.reshape(tensor.shape)


def _check_count(name: str, shape: list[int], count: int, got: int) -> None:
    if got != count:
        raise V2Error(400, f"input {name!r} has shape {shape}, {count} values; its data has {got}")


def _flat(data: list | None, name: str) -> list:
    """Nested lists flattened (row-major), without recursion."""
    if data is None:
        raise V2Error(400, f"input {name!r} has no data (nor parameters.binary_data_size)")
    out, stack = [], [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _json_texts(tensor: RequestInput, name: str) -> list[str]:
    texts = _flat(tensor.data, name)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise V2Error(400, f"input {name!r} is BYTES: element {i} is {_json_type(text)}, not a string")
    return texts


def _texts(binary: bytes, name: str) -> list[str]:
    """BYTES in binary: each element a 4-byte little-endian length, then that many bytes (UTF-8 text here)."""
    texts, at = [], 0
    while at < len(binary):
        if at + 4 > len(binary) or at + 4 + (n := struct.unpack_from("<I", binary, at)[0]) > len(binary):
            raise V2Error(400, f"input {name!r}: BYTES element {len(texts)} runs past the end of its binary data")
        try:
            texts.append(binary[at + 4:at + 4 + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise V2Error(400, f"input {name!r}: BYTES element {len(texts)} is not UTF-8 text") from None
        at += 4 + n
    return texts


def _json_numbers(tensor: RequestInput, dtype: np.dtype, name: str) -> np.ndarray:
    values = _flat(tensor.data, name)
    for i, v in enumerate(values):
        if type(v) not in (int, float):
            raise V2Error(400, f"input {name!r} is {tensor.datatype}: element {i} is {_json_type(v)}, not a number")
    try:
        x = np.asarray(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise V2Error(400, f"input {name!r} holds a number too large for {tensor.datatype}") from None
    if dtype == np.uint8:
        bad = np.flatnonzero((x < 0) | (x > 255) | (x != np.round(x)))
        if len(bad):
            raise V2Error(400, f"input {name!r} is UINT8: element {int(bad[0])} ({values[int(bad[0])]!r}) is not "
                          "a whole number from 0 to 255")
    with np.errstate(over="ignore"):
        return x.astype(dtype)


def _json_type(v) -> str:
    return {bool: "a boolean", str: "a string", dict: "an object", type(None): "null"}.get(type(v), type(v).__name__)


def wanted_outputs(req: InferRequest, model: str) -> list[tuple[str, bool]]:
    """(name, in binary) of each output to answer, in the request's order (default: label and probabilities)."""
    default_binary = (req.parameters or {}).get("binary_data_output") is True
    if req.outputs is None:
        return [(name, default_binary) for name in DEFAULT_OUTPUTS]
    wanted = []
    for out in req.outputs:
        if out.name not in OUTPUTS:
            raise V2Error(400, f"model {model!r} has no output {out.name!r}; its outputs: {', '.join(OUTPUTS)}")
        flag = (out.parameters or {}).get("binary_data")
        wanted.append((out.name, default_binary if flag is None else flag is True))
    return wanted


def encode(wanted: list[tuple[str, bool]], tensors: dict[str, np.ndarray | list[str]]) -> tuple[list[dict], bytes]:
    """The answer's output tensors (JSON) and the binary part after the JSON header (empty: none in binary)."""
    outputs, binary = [], []
    for name, in_binary in wanted:
        value = tensors[name]
        if name == "label":
            out = {"name": name, "shape": [len(value)], "datatype": "BYTES"}
            if in_binary:
                raw = b"".join(struct.pack("<I", len(b)) + b for b in (s.encode("utf-8") for s in value))
            else:
                out["data"] = list(value)
        else:
            arr = np.ascontiguousarray(value, dtype="<f4")
            out = {"name": name, "shape": list(arr.shape), "datatype": "FP32"}
            if in_binary:
                raw = arr.tobytes()
            else:
                out["data"] = arr.ravel().tolist()
        if in_binary:
            out["parameters"] = {"binary_data_size": len(raw)}
            binary.append(raw)
        outputs.append(out)
    return outputs, b"".join(binary)
