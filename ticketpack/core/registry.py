"""A tiny name → entry registry with the verbs users know from timm: ``list(pattern)``, ``create(name, **options)``.

Models, datasets, pruning strategies and transfer inits each keep one; ``ticketpack.list_models("lenet*")``,
``ticketpack.create_strategy("global")`` and ``ticketpack list strategies`` read them all the same way. An unknown
name answers with the known ones, and a bad option names the option.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from ticketpack.core.errors import TicketpackError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name. An entry is called with the options to create its object (a class, a factory, or any
    callable); its documentation is the ``doc`` given to :meth:`register`, else its ``doc`` string, else its
    docstring."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._docs: dict[str, str] = {}

    def register(self, name: str, item: T, doc: str | None = None) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        if doc is not None:
            self._docs[name] = doc
        return item

    def __call__(self, name: str):
        """Decorator form: ``@STRATEGIES("global")``."""

        def deco(item: T) -> T:
            return self.register(name, item)

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise TicketpackError(f"unknown {self.kind} {name!r}; known: {', '.join(self.list())}") from None

    def list(self, pattern: str = "*") -> list[str]:
        """The registered names that match the shell-style ``pattern`` (``"random*"``), sorted."""
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def in_order(self) -> list[str]:
        """The registered names in the order they were registered (built-ins first, in their module's order)."""
        return list(self._items)

    def create(self, name: str, **options: Any) -> Any:
        """The object ``name`` makes with ``options``; a pydantic entry's bad option is a one-line error naming it."""
        item: Any = self.get(name)
        try:
            return item(**options)
        except ValidationError as exc:
            known = ", ".join(getattr(item, "model_fields", {})) or "none"
            raise TicketpackError(f"{self.kind} {name!r}: {_option_errors(exc)} (its options: {known})") from None

    def doc(self, name: str) -> str:
        """The first paragraph of ``name``'s documentation, on one line."""
        item = self.get(name)
        text = self._docs.get(name, getattr(item, "doc", None))
        if not isinstance(text, str):
            text = item.__doc__ or ""
        return " ".join(text.strip().split("\n\n")[0].split())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())


def _option_errors(exc: ValidationError) -> str:
    """``option 'power': Input should be a valid number; option 'speed': not an option`` from pydantic's errors."""

    def one(e: Any) -> str:
        where = ".".join(map(str, e["loc"])) or "options"
        why = "not an option" if e["type"] == "extra_forbidden" else e["msg"]
        return f"option {where!r}: {why}"

    return "; ".join(one(e) for e in exc.errors())
