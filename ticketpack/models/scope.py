"""Torch's process-wide settings, scoped to one call: the CPU thread count and the global RNG state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_scope(threads: int | None = None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None or 0: as they are); afterwards the caller's thread
    count and global torch RNG state are back, whatever the block set or drew: the CPU generator's, and each CUDA
    device's where CUDA was in use already (a block that first starts CUDA leaves its generators as seeded)."""
    threads_before = torch.get_num_threads()
    rng_before = torch.random.get_rng_state()
    cuda_before = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        if threads:
            torch.set_num_threads(threads)
        yield
    finally:
        if torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)
        torch.random.set_rng_state(rng_before)
        if cuda_before is not None:
            torch.cuda.set_rng_state_all(cuda_before)
