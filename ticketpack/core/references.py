"""``path/to/file.py:name`` and ``package.module:name``: the callable a user's reference names (torch-free).

Models (``--model``) and datasets (``--dataset``) take the same references; importing a user's file runs the
user's own code, so it happens only when a command needs the object, never when a ticket or a card is read.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from ticketpack.core.errors import FieldError, field


def is_reference(text: str) -> bool:
    """True for ``file.py:name`` / ``module:name`` (a registry name has no colon; a Windows drive letter is a path)."""
    where, _, attr = str(text).rpartition(":")
    return bool(where) and bool(attr) and len(where) > 1


def _load_file(path: Path, name: str):
    module_name = f"ticketpack_user_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise FieldError(f"{field(name)} {path}: cannot import this file as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise FieldError(f"{field(name)} {path}: importing it failed: {type(exc).__name__}: {exc}") from None
    return module


def resolve_reference(reference: str, name: str, wants: str = "factory") -> tuple[Callable, Path | None]:
    """The callable ``reference`` names and its source file (None for a module without one).

    The field ``name`` (``model.name``, ``dataset``) starts every error, which names what was wrong with the reference."""
    where, _, attr = reference.rpartition(":")
    if not where or not attr:
        raise FieldError(f"{field(name)} {reference!r}: expected path/to/file.py:{wants} or package.module:{wants}")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise FieldError(f"{field(name)} {reference!r}: file {where} not found")
        module = _load_file(path, name)
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            raise FieldError(f"{field(name)} {reference!r}: no module named {exc.name!r}") from None
        except Exception as exc:
            raise FieldError(f"{field(name)} {reference!r}: importing {where} failed: {type(exc).__name__}: {exc}") from None
        path = Path(module.__file__).resolve() if getattr(module, "__file__", None) else None
    obj = getattr(module, attr, None)
    if obj is None or not callable(obj):
        known = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise FieldError(f"{field(name)} {reference!r}: no callable {attr!r} in {where}"
                              + (f"; callables there: {', '.join(known)}" if known else ""))
    return obj, path


def file_sha256(path: Path | None) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else None
