"""Atomic writes, hashing and safe tensor files: every byte ticketpack writes goes through here."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ValidationError

from ticketpack.errors import TicketpackError

if TYPE_CHECKING:  # torch is only needed by the tensor helpers
    import torch

M = TypeVar("M", bound=BaseModel)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_model(path: Path, model: BaseModel) -> None:
    """Write a pydantic model as indented JSON, atomically."""
    atomic_write_text(path, model.model_dump_json(indent=2) + "\n")


def read_model(path: Path, cls: type[M], what: str | None = None) -> M:
    """Read and validate a JSON file; any problem becomes a one-line :class:`TicketpackError`."""
    what = what or cls.__name__
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TicketpackError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TicketpackError(f"cannot read {what} {path}: {exc}") from None
    try:
        return cls.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise TicketpackError(f"{path} is not a valid {what}: {loc}: {first['msg']}") from None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
