"""``--device auto|cpu|cuda|cuda:N`` and ``--precision bf16``, checked before any work starts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ticketpack.core.errors import FieldError, TicketpackError


def resolve_device(name: str) -> torch.device:
    """The torch device ``name`` asks for; ``auto`` and ``cuda`` are the current CUDA GPU (the first, or a transfer
    worker's own), ``auto`` the CPU where there is none."""
    if name == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = "a CPU build of torch" if torch.version.cuda is None else f"torch for CUDA {torch.version.cuda}"
        raise TicketpackError(f"device {name!r}: no CUDA GPU is visible here ({build}, torch {torch.__version__}); "
                              "use cpu or auto (docs/gpu.md)")
    index = int(name.partition(":")[2] or torch.cuda.current_device())  # a worker's own GPU (use_gpu_slot)
    if index >= torch.cuda.device_count():
        raise TicketpackError(f"device {name!r}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    return torch.device("cuda", index)


def check_precision(precision: str, device: torch.device) -> None:
    """bf16 only where the device runs it natively: CUDA GPUs that support it, CPUs with AVX-512 BF16 or AMX."""
    if precision != "bf16":
        return
    if device.type == "cuda":
        if not torch.cuda.is_bf16_supported():
            raise TicketpackError(f"precision bf16: {torch.cuda.get_device_name(device)} does not support bfloat16")
        return
    capability = torch.backends.cpu.get_cpu_capability()
    if not any(tag in capability for tag in ("AMX", "BF16", "AVX512_BF16")):
        raise FieldError(f"precision bf16: this CPU ({capability}) has no native bfloat16 (AVX-512 BF16 or AMX); "
                              "it would run slower than fp32: use `train.precision` fp32", fields=["train.precision"])


@contextmanager
def deterministic_scope(enabled: bool) -> Iterator[None]:
    """Deterministic kernels while the block runs (cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG``, set to ``:4096:8``
    unless the user set it), then the caller's settings again, the environment included."""
    if not enabled:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    set_here = "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    if set_here:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]
        if set_here:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def describe(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H200)`` or ``cpu``."""
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"
