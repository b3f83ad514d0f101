"""Turning a model reference into its factory: registry names, ``file.py:factory`` and ``module:factory``.

Importing a user's file runs the user's own code: that happens only here, when a command needs the torch model
(search, transfer, export), never when a ticket or an ONNX file is read.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.core.references import resolve_reference
from ticketpack.runtime.spec import ModelSource, ModelSpec

OBJECT_PREFIX = "python:"


class ModelObjects:
    """Models handed over as Python objects (a notebook's factory or module instance), by reference.

    A ``python:<name>`` reference that a ticket records names an object of the process that made it, so the one
    instance, :data:`MODEL_OBJECTS`, serves the process: a ticket searched with ``model=net`` can be transferred and
    exported in the same session. Bounded: it holds the ``max_entries`` references used last (default 16); an
    older one is dropped (building from it then asks for the object again, as in a new session), and
    :meth:`clear` drops them all, with the modules they hold.
    """

    def __init__(self, max_entries: int = 16) -> None:
        if max_entries < 1:
            raise TicketpackError(f"max_entries must be at least 1, not {max_entries}")
        self.max_entries = max_entries
        self._factories: OrderedDict[str, Callable] = OrderedDict()

    def __len__(self) -> int:
        return len(self._factories)

    def __contains__(self, reference: object) -> bool:
        return reference in self._factories

    def add(self, reference: str, factory: Callable) -> None:
        self._factories[reference] = factory
        self._factories.move_to_end(reference)
        while len(self._factories) > self.max_entries:
            self._factories.popitem(last=False)

    def get(self, reference: str) -> Callable | None:
        factory = self._factories.get(reference)
        if factory is not None:
            self._factories.move_to_end(reference)
        return factory

    def clear(self) -> None:
        """Forget every object handed over (and release the modules they hold)."""
        self._factories.clear()


MODEL_OBJECTS = ModelObjects()


def as_factory(obj: Callable | Any) -> Callable:
    """A factory for ``obj``: a callable as is; an ``nn.Module`` instance as a factory of copies of it."""
    from torch import nn

    if isinstance(obj, nn.Module):
        def copies(**_ignored):
            return copy.deepcopy(obj)

        copies.__wrapped__ = type(obj)
        return copies
    if not callable(obj):
        raise TicketpackError(f"model must be a registry name, a reference, a factory or an nn.Module, not {type(obj).__name__}")
    return obj


def register_object(obj: Callable | Any, reference: str | None = None) -> str:
    """Make a factory or module instance buildable by reference in this process; return the reference.

    A factory importable from its module keeps ``module:qualname`` (other processes can import it too);
    anything else (``__main__``, a local function, an instance) gets ``python:<name>``, which only this process
    can build (:class:`ModelObjects`): pass the same object again to ``run_transfer``/``export_model`` in a new
    session.
    """
    factory = as_factory(obj)
    if reference is None:
        target = getattr(factory, "__wrapped__", factory)
        module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", type(target).__name__)
        importable = module not in (None, "__main__") and "<" not in qualname and factory is obj
        reference = f"{module}:{qualname}" if importable else f"{OBJECT_PREFIX}{qualname}"
    MODEL_OBJECTS.add(reference, factory)
    return reference


def _source_file(factory: Callable) -> Path | None:
    """The file that defines ``factory`` (for a module instance: its class), if there is one."""
    try:
        path = inspect.getsourcefile(getattr(factory, "__wrapped__", factory))
    except TypeError:  # a builtin or C extension
        return None
    return Path(path) if path and Path(path).is_file() else None


def resolve(reference: str) -> tuple[Callable, Path | None]:
    """The factory a reference (``file.py:factory``, ``module:factory``, a registered object) names, and its source
    file; registry names are looked up by :func:`ticketpack.models.registry.build`."""
    if (factory := MODEL_OBJECTS.get(reference)) is not None:
        return factory, _source_file(factory)
    if reference.startswith(OBJECT_PREFIX):
        raise TicketpackError(
            f"the model {reference!r} was given as a Python object in another session (or before the last "
            f"{MODEL_OBJECTS.max_entries} objects): pass the same factory or module again (model=...), or use a "
            "path/to/file.py:factory reference"
        )
    return resolve_reference(reference, "model.name")


def source_of(spec: ModelSpec) -> ModelSource:
    """The reference plus the sha256 of the factory's source file (built-ins: ticketpack's version is enough)."""
    if not spec.is_reference:
        return ModelSource(reference=spec.name)
    factory, path = resolve(spec.name)
    path = path or _source_file(factory)
    if path is None:
        return ModelSource(reference=spec.name)
    return ModelSource(reference=spec.name, file=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def check_source(recorded: ModelSource | None, spec: ModelSpec, allow_changed: bool = False) -> None:
    """Refuse to rebuild a model whose factory source changed since ``recorded`` (unless ``allow_changed``)."""
    if recorded is None or recorded.sha256 is None or allow_changed:
        return
    now = source_of(spec)
    if now.sha256 != recorded.sha256:
        raise FieldError(
            f"the model source {now.file or recorded.file} changed since the ticket was made (sha256 "
            f"{recorded.sha256[:12]}… then, {(now.sha256 or 'missing')[:12]}… now); restore it, or pass "
            "`allow_changed_model` to use it anyway", fields=["allow_changed_model"]
        )
