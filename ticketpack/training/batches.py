"""Batches of a split as tensors: indexed out of memory when the split holds its model input, else read and
preprocessed by a ``torch.utils.data.DataLoader`` with worker processes (image files, a user's dataset object), so
decoding runs beside the training step and the data is never held whole."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ticketpack.data.base import Split

Batch = tuple[torch.Tensor, torch.Tensor]


class _SplitBatches(Dataset):
    """``dataset[idx]`` with ``idx`` one batch's row indices (the loader's sampler hands out whole batches)."""

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, idx) -> Batch:
        idx = np.asarray(idx, dtype=np.int64)
        x = np.ascontiguousarray(self.split.batch(idx))
        return torch.from_numpy(x), torch.from_numpy(self.split.y[idx])


def batches(split: Split, index_batches: Iterable[torch.Tensor], workers: int = 0, prefetch: int = 4) -> Iterator[Batch]:
    """(x, y) for each batch of row indices, in order; streamed splits are read ``prefetch`` batches ahead by each
    of ``workers`` processes."""
    if not split.streamed:
        x, y = torch.from_numpy(np.ascontiguousarray(split.features)), torch.from_numpy(split.y)
        for idx in index_batches:
            yield x[idx], y[idx]
        return
    if workers == 0:
        source = _SplitBatches(split)
        for idx in index_batches:
            yield source[idx.numpy() if isinstance(idx, torch.Tensor) else idx]
        return
    loader = DataLoader(_SplitBatches(split), batch_size=None, num_workers=workers, prefetch_factor=prefetch,
                        sampler=_AsNumpy(index_batches), pin_memory=False)
    yield from loader


class _AsNumpy:
    """Index tensors as numpy arrays (what a worker's ``split.batch`` indexes with); lazily, so the sampler draws
    each epoch's order when the loader asks for it."""

    def __init__(self, index_batches: Iterable[torch.Tensor]) -> None:
        self.index_batches = index_batches

    def __iter__(self):
        for idx in self.index_batches:
            yield idx.numpy() if isinstance(idx, torch.Tensor) else np.asarray(idx)


def in_order(n: int, batch_size: int) -> Iterator[torch.Tensor]:
    """Row indices 0..n-1 in batches (evaluation)."""
    for i in range(0, n, batch_size):
        yield torch.arange(i, min(i + batch_size, n))


def shuffled(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Epoch after epoch, a fresh permutation of 0..n-1 from ``gen`` cut into batches (endless: the caller stops)."""
    while True:
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            yield order[i : i + batch_size]
