"""Raw rows by index: in memory (arrays, lists of texts), image files decoded when asked, or a user's dataset object
(``__len__`` and ``__getitem__(i) -> (x, y)``, a ``torch.utils.data.Dataset`` for one). Torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ticketpack.core.errors import TicketpackError


class Rows(Protocol):
    in_memory: bool

    def __len__(self) -> int: ...

    def take(self, idx: np.ndarray) -> Any:
        """The raw rows ``idx`` as a batch :meth:`InputKind.transform` takes."""
        ...


class ArrayRows:
    """Rows held in memory: a numeric array, or an object array of texts."""

    in_memory = True

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def take(self, idx: np.ndarray) -> np.ndarray:
        return self.values[idx]


class ImageFiles:
    """Image files decoded (Pillow) when a batch asks for them, never all at once. The paths are one numpy array of
    fixed-width strings, so forked loader workers share it without copy-on-write of a million Python objects."""

    in_memory = False

    def __init__(self, paths: list[Path] | np.ndarray, channels: int) -> None:
        self.paths = np.asarray([str(p) for p in paths]) if not isinstance(paths, np.ndarray) else paths
        self.channels = channels

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, idx: np.ndarray) -> np.ndarray | list[np.ndarray]:
        from ticketpack.data.images import decode

        images = [decode(str(p), self.channels) for p in self.paths[idx]]
        same = len({im.shape for im in images}) <= 1
        return np.stack(images) if same and images else images


class ItemRows:
    """A user's dataset object: ``len(ds)`` and ``ds[i] -> (x, y)`` (x an array or a tensor)."""

    in_memory = False

    def __init__(self, dataset: Any, where: str) -> None:
        self.dataset, self.where = dataset, where

    def __len__(self) -> int:
        return len(self.dataset)

    def item(self, i: int) -> tuple[Any, Any]:
        try:
            item = self.dataset[int(i)]
        except Exception as exc:
            raise TicketpackError(f"{self.where}: item {int(i)} raised {type(exc).__name__}: {exc}") from None
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TicketpackError(f"{self.where}: item {int(i)} is {type(item).__name__}; expected a pair (x, y)")
        return item[0], item[1]

    def take(self, idx: np.ndarray) -> np.ndarray | list:
        xs = [_numpy(self.item(i)[0]) for i in idx]
        if xs and isinstance(xs[0], str):
            return np.asarray(xs, dtype=object)
        same = len({np.shape(x) for x in xs}) <= 1
        return np.stack(xs) if same and xs else xs

    def labels(self) -> list:
        """Every item's label: the dataset's ``targets`` (torchvision's attribute) when it has them, else read item
        by item (which decodes every item once)."""
        targets = getattr(self.dataset, "targets", None)
        if targets is not None and len(targets) == len(self):
            return [_scalar(t) for t in targets]
        return [_scalar(self.item(i)[1]) for i in range(len(self))]


def _numpy(x: Any) -> Any:
    if isinstance(x, str):
        return x
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _scalar(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    return v
