"""ticketpack: lottery tickets from search to a served ONNX model.

Importing ``ticketpack`` is cheap and changes nothing in the process (no environment variable, thread or signal
handler); each API is loaded on first use, and the prediction side never imports torch::

    import ticketpack
    clf = ticketpack.load("model.onnx")                                          # onnxruntime + numpy only
    manifest = ticketpack.search_ticket(ticketpack.SearchConfig(), "tickets/demo")   # torch

Models, datasets, pruning strategies and transfer inits share one registry API, in the style of timm:
``list_models("conv*")``, ``create_strategy("global")``, the same for datasets and inits.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ticketpack.core.errors import FieldError, GateFailed, TicketpackError
from ticketpack.version import __version__

if TYPE_CHECKING:
    from ticketpack.core.registry import Registry

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

# Where each kind's registry lives; each is imported on first use (models and strategies import torch).
REGISTRIES = {
    "models": "ticketpack.models.registry:MODELS",
    "datasets": "ticketpack.data.registry:DATASETS",
    "strategies": "ticketpack.pruning.strategies:STRATEGIES",
    "inits": "ticketpack.transfer.strategies:INITS",
    "kinds": "ticketpack.data.kinds:KINDS",  # torch-free
    "layers": "ticketpack.pruning.layers:LAYERS",  # how structured pruning maps a layer type's units
    "granularities": "ticketpack.pruning.granularity:GRANULARITIES",
}

__all__ = [
    "FieldError", "GateFailed", "TicketpackError", "__version__", *_LAZY, "create_dataset", "create_init", "create_model",
    "create_strategy", "get_registry", "list_datasets", "list_inits", "list_models", "list_strategies",
]


def get_registry(kind: str) -> Registry:
    """The registry of ``kind``: models, datasets, strategies, inits, (input) kinds, layers or granularities."""
    if kind not in REGISTRIES:
        raise TicketpackError(f"unknown kind {kind!r}; known: {', '.join(REGISTRIES)}")
    module, name = REGISTRIES[kind].split(":")
    return getattr(importlib.import_module(module), name)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching ``pattern`` (shell-style, e.g. ``"*net*"``)."""
    return get_registry("models").list(pattern)


def create_model(name: str, **options: Any) -> Any:
    """The ``torch.nn.Module`` the factory ``name`` builds: ``create_model("convnet", input_shape=(1, 8, 8),
    num_classes=10)``."""
    return get_registry("models").create(name, **options)


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered dataset names matching ``pattern`` (a directory of ``<domain>.jsonl`` files needs none)."""
    return get_registry("datasets").list(pattern)


def create_dataset(name: str, **options: Any) -> Any:
    """The dataset ``name``, or the text dataset in the directory ``name``; ``.load(domain, seed, split)`` reads it."""
    return importlib.import_module("ticketpack.data.registry").get(name, **options)


def list_strategies(pattern: str = "*") -> list[str]:
    """Registered pruning strategy names matching ``pattern``."""
    return get_registry("strategies").list(pattern)


def create_strategy(name: str, **options: Any) -> Any:
    """The pruning strategy ``name`` with ``options`` (its fields), checked: ``create_strategy("global")``."""
    return get_registry("strategies").create(name, **options)


def list_inits(pattern: str = "*") -> list[str]:
    """Registered transfer initialization strategy names matching ``pattern``."""
    return get_registry("inits").list(pattern)


def create_init(name: str, **options: Any) -> Any:
    """The transfer initialization strategy ``name`` with ``options``: ``create_init("ticket").masked``."""
    return get_registry("inits").create(name, **options)


# Subpackages share the pipeline's verbs (ticketpack.search, .transfer, .export), so the top-level
# functions carry a noun: search_ticket, run_transfer, export_model, evaluate_model.


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ticketpack' has no attribute {name!r}")
