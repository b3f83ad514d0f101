"""Old addresses of moved modules (``ticketpack.fileio`` is now ``ticketpack.core.fileio``): each keeps working
until 0.2, as the same module object, with a DeprecationWarning naming the new one (timm's way with renamed
modules)."""

from __future__ import annotations

import importlib
import sys
import warnings


def alias(old: str, new: str) -> None:
    """Make ``import old`` give the module ``new`` (called from the old module's own file, while it is imported)."""
    warnings.warn(f"{old} moved to {new}; the old name stops working in ticketpack 0.2", DeprecationWarning,
                  stacklevel=3)
    sys.modules[old] = importlib.import_module(new)
