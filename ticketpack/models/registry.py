"""Models by name, and ``build``: one code path for built-ins and user factories alike.

A built-in is a registered factory with the same signature a user's factory has::

    factory(input_shape=..., num_classes=..., [vocab_size=...,] **options) -> torch.nn.Module

``build`` calls it, checks that it returned an ``nn.Module`` and that its forward maps an example batch to
``(batch, num_classes)`` logits, and turns every failure into a one-line :class:`TicketpackError`.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ticketpack.core.errors import TicketpackError
from ticketpack.core.registry import Registry
from ticketpack.data.kinds import InputKind
from ticketpack.models.conv import ConvNet
from ticketpack.models.factory import resolve
from ticketpack.models.fasttext import FastText
from ticketpack.models.mlp import MLP
from ticketpack.models.probe import run_hooked
from ticketpack.models.text import BagOfWords, TextCNN
from ticketpack.runtime.spec import ModelSpec


@dataclass(frozen=True)
class Takes:
    """What inputs a built-in model is built for, by what the input is (its shape, type, vocabulary), not by the
    kind's name: a kind a user adds fits every model its inputs fit."""

    fits: Callable[[InputKind], bool]
    says: str  # "float tensors of any shape"


FLOAT = Takes(lambda p: p.input_dtype == "float32", "float inputs of any shape (images, tables, ...)")
IMAGE = Takes(lambda p: p.input_dtype == "float32" and len(p.input_shape) == 3, "float (channels, height, width) images")
TOKENS = Takes(lambda p: "vocab_size" in p.factory_options(), "token ids with a vocabulary (text)")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its factory, the input kinds it takes, and the pruning strategy it defaults to."""

    factory: Callable[..., nn.Module]
    takes: Takes  # the inputs it is built for
    default_strategy: str = "global"
    doc: str = ""
    recipe: dict = field(default_factory=dict)  # training defaults (TrainConfig keys) under the user's own

    def __call__(self, **options) -> nn.Module:
        """``create_model(name, input_shape=..., num_classes=..., **options)``: the bare factory call, unchecked
        (``build`` is the checked path a search takes)."""
        return self.factory(**options)


MODELS: Registry[ModelEntry] = Registry("model")
MODELS.register("lenet-300-100", ModelEntry(MLP, FLOAT, doc="LeNet-300-100, the MLP of Frankle & Carbin (2019)."))
MODELS.register("convnet", ModelEntry(ConvNet, IMAGE, doc="Two 3x3 conv layers, a max-pool, two linear layers."))
# global magnitude would rank N(0, 1) embeddings above the small dense layers of text models and empty them
MODELS.register("bow", ModelEntry(BagOfWords, TOKENS, "layerwise", "Mean of token embeddings, one hidden layer."))
MODELS.register("textcnn", ModelEntry(TextCNN, TOKENS, "layerwise", "Kim (2014): 1-D convolutions, max over time."))
MODELS.register("fasttext", ModelEntry(
    FastText, TOKENS, "layerwise", "fastText: mean of hashed n-gram embeddings, optional hidden layer, logits.",
    recipe={"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.0, "batch_size": 32, "epochs": 20, "patience": 10},
))

def names() -> list[str]:
    return MODELS.list()


def recipe(name: str) -> dict:
    """Training defaults of a registered model (empty for user factories)."""
    return dict(MODELS.get(name).recipe) if name in MODELS else {}


def default_strategy(name: str) -> str:
    """The pruning strategy a model uses when none is named: the registry's, ``layerwise`` for user factories
    (safe whatever the model holds: a global ranking can empty a layer whose weights are small by scale)."""
    return MODELS.get(name).default_strategy if name in MODELS else "layerwise"


def example_input(preprocessing: InputKind, batch: int = 2) -> torch.Tensor:
    """A small valid model-ready batch for ``preprocessing`` (its kind's :meth:`~InputKind.example`)."""
    return torch.from_numpy(preprocessing.example(batch))


def _where(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of a user's traceback (not torch's own)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/torch/" not in f.filename]
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def build(spec: ModelSpec, preprocessing: InputKind, num_classes: int,
          example: torch.Tensor | None = None) -> nn.Module:
    """Build ``spec`` for this input and number of classes, and check it on an example batch."""
    if spec.is_reference:
        factory, _path = resolve(spec.name)
    else:
        entry = MODELS.get(spec.name)
        if not entry.takes.fits(preprocessing):
            fits = [n for n in MODELS.list() if MODELS.get(n).takes.fits(preprocessing)]
            raise TicketpackError(
                f"model {spec.name!r} takes {entry.takes.says} but the dataset holds {preprocessing.describe()}; "
                f"try: {', '.join(fits) or 'a model of your own (path/to/file.py:factory)'}"
            )
        factory = entry.factory
    kwargs = {**preprocessing.factory_options(), "num_classes": num_classes}
    try:
        model = factory(**kwargs, **spec.options)
    except TypeError as exc:
        raise TicketpackError(f"model {spec.name!r}: bad options {spec.options}: {exc}") from None
    except Exception as exc:
        raise TicketpackError(f"model {spec.name!r}: the factory raised {type(exc).__name__}: {exc}{_where(exc)}") from None
    if not isinstance(model, nn.Module):
        raise TicketpackError(f"model {spec.name!r}: the factory returned {type(model).__name__}, not a torch.nn.Module")
    check_forward(model, spec.name, example if example is not None else example_input(preprocessing), num_classes)
    return model


def check_forward(model: nn.Module, name: str, example: torch.Tensor, num_classes: int) -> None:
    """The model must map an example batch to ``(batch, num_classes)`` float logits."""
    try:
        out = run_hooked(model, example, [])
    except Exception as exc:
        raise TicketpackError(
            f"model {name!r}: forward failed on an example batch of shape {tuple(example.shape)} "
            f"({example.dtype}): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{_where(exc)}"
        ) from None
    if not isinstance(out, torch.Tensor):
        raise TicketpackError(f"model {name!r}: forward returned {type(out).__name__}; it must return a logits tensor")
    want = (example.shape[0], num_classes)
    if tuple(out.shape) != want:
        raise TicketpackError(f"model {name!r}: forward returned shape {tuple(out.shape)}; expected (batch, classes) = {want}")
