"""ticketpack: lottery tickets from search to a served ONNX model.

Importing ``ticketpack`` is cheap; each API is loaded on first use, and the prediction side never imports torch::

    import ticketpack
    clf = ticketpack.load("model.onnx")                                          # onnxruntime + numpy only
    manifest = ticketpack.search_ticket(ticketpack.SearchConfig(), "tickets/demo")   # torch
"""

from __future__ import annotations

import importlib
from typing import Any

from ticketpack.errors import GateFailed, TicketpackError
from ticketpack.lifeline import arm_from_env
from ticketpack.version import __version__

arm_from_env()  # a worker process that `transfer` or `serve` started dies with it, armed as early as possible

_LAZY = {
    "load": "ticketpack.runtime.predictor",  # torch-free
    "Predictor": "ticketpack.runtime.predictor",  # torch-free
    "search_ticket": "ticketpack.search",
    "SearchConfig": "ticketpack.search",
    "Ticket": "ticketpack.search",
    "run_transfer": "ticketpack.transfer",
    "TransferConfig": "ticketpack.transfer",
    "export_model": "ticketpack.export.exporter",
    "evaluate_model": "ticketpack.evaluate",  # torch-free
    "validate_model": "ticketpack.runtime.validate",  # torch-free
}

__all__ = ["GateFailed", "TicketpackError", "__version__", *_LAZY]


# Subpackages share the pipeline's verbs (ticketpack.search, .transfer, .export), so the top-level
# functions carry a noun: search_ticket, run_transfer, export_model, evaluate_model.


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ticketpack' has no attribute {name!r}")
