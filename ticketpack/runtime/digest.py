"""A content hash of an ONNX graph's weights, so that a changed weight is detected (torch-free).

The digest covers every initializer and sparse initializer, sorted by name: name, element type, shape and the
values as little-endian bytes (strings: each one's length, then its bytes). It does not depend on how the protobuf
stores them (raw bytes or typed fields), on node order, or on the metadata (the card that records the digest lives
in ``metadata_props``).
"""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
from onnx import numpy_helper


def _update(h: hashlib._Hash, kind: str, tensor: onnx.TensorProto, name: str | None = None) -> None:
    h.update(f"{kind}:{name or tensor.name}:{tensor.data_type}:{list(tensor.dims)}\n".encode())
    if tensor.data_type == onnx.TensorProto.STRING:  # strings (a self-contained file's class names): length, bytes
        for value in tensor.string_data:
            h.update(len(value).to_bytes(8, "little") + value)
        return
    array = np.ascontiguousarray(numpy_helper.to_array(tensor))
    h.update(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())


def weights_digest(model: onnx.ModelProto) -> str:
    """sha256 (hex) over the graph's initializers and sparse initializers, sorted by name."""
    h = hashlib.sha256()
    graph = model.graph
    for t in sorted(graph.initializer, key=lambda t: t.name):
        _update(h, "dense", t)
    for s in sorted(graph.sparse_initializer, key=lambda s: s.values.name):
        h.update(f"sparse-dims:{list(s.dims)}\n".encode())
        _update(h, "sparse-values", s.values)
        _update(h, "sparse-indices", s.indices, s.values.name)
    return h.hexdigest()
