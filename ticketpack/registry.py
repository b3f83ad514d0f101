"""A tiny name → object registry that answers an unknown name with the known ones."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from ticketpack.errors import TicketpackError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict with a helpful ``get``: ``models.get("lenet-300-100")``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    def __call__(self, name: str):
        """Decorator form: ``@MODELS("lenet-300-100")``."""

        def deco(item: T) -> T:
            return self.register(name, item)

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise TicketpackError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
