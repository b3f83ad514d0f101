"""Model architectures, chosen by name from a registry (``build``, ``names``).

``ModelSpec`` is torch-free; everything else here imports torch on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ticketpack.models.spec import ModelSpec

_LAZY = {"TicketModel": "ticketpack.models.base", "build": "ticketpack.models.registry", "names": "ticketpack.models.registry"}
__all__ = ["ModelSpec", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ticketpack.models' has no attribute {name!r}")
