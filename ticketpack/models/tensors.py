"""Named tensors on disk and their digests: safetensors files (no pickle) of state dicts and masks.

The torch side of :mod:`ticketpack.core.fileio`, which stays torch-free for the runtime.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ticketpack.core.errors import TicketpackError
from ticketpack.core.fileio import atomic_write_bytes, sha256_bytes


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    """Save tensors as safetensors (no pickle), atomically; return the file's sha256."""
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def load_tensors(path: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load a safetensors file, refusing it if its sha256 differs from the recorded one."""
    from safetensors.torch import load

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TicketpackError(f"missing tensor file {path}") from None
    if expected_sha256 is not None and sha256_bytes(data) != expected_sha256:
        raise TicketpackError(
            f"{path} does not match the sha256 recorded in its manifest: the artifact was changed or truncated"
        )
    try:
        return load(data)
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise TicketpackError(f"{path} is not a readable safetensors file: {exc}") from None


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """A content hash of named tensors that does not depend on file layout (used for mask hashes)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()
