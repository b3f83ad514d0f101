"""Model architectures: built-ins chosen by name from a registry, or a user's own factory (``file.py:factory``).

``ModelSpec`` is torch-free; everything else here imports torch on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ticketpack.runtime.spec import ModelSource, ModelSpec

_LAZY = {"build": "ticketpack.models.registry", "names": "ticketpack.models.registry",
         "MODELS": "ticketpack.models.registry", "example_input": "ticketpack.models.registry"}
__all__ = ["ModelSource", "ModelSpec", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ticketpack.models' has no attribute {name!r}")
