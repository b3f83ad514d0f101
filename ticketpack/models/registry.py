"""Models by name: ``build(ModelSpec(name="lenet-300-100"), preprocessing, num_classes)``."""

from __future__ import annotations

from collections.abc import Callable

from ticketpack.data.preprocessing import ImagePreprocessing, TextPreprocessing
from ticketpack.errors import TicketpackError
from ticketpack.models.base import ModelSpec, TicketModel
from ticketpack.models.conv import ConvNet
from ticketpack.models.mlp import MLP
from ticketpack.models.text import BagOfWords, TextCNN
from ticketpack.registry import Registry

# Each entry: (input kind it accepts, constructor taking (input_shape, num_classes, **options)).
MODELS: Registry[tuple[str, Callable[..., TicketModel]]] = Registry("model")
MODELS.register("lenet-300-100", ("image", MLP))
MODELS.register("convnet", ("image", ConvNet))
MODELS.register("bow", ("text", BagOfWords))
MODELS.register("textcnn", ("text", TextCNN))


def names() -> list[str]:
    return MODELS.names()


def default_strategy(name: str) -> str:
    """The pruning strategy a model uses when none is named (unknown names fall back to ``global``)."""
    return MODELS.get(name)[1].default_strategy if name in MODELS else "global"


def build(spec: ModelSpec, preprocessing: ImagePreprocessing | TextPreprocessing, num_classes: int) -> TicketModel:
    kind, cls = MODELS.get(spec.name)
    if preprocessing.kind != kind:
        fits = [n for n in MODELS.names() if MODELS.get(n)[0] == preprocessing.kind]
        raise TicketpackError(
            f"model {spec.name!r} takes {kind} inputs but the dataset is {preprocessing.kind}; try: {', '.join(fits)}"
        )
    extra = {"vocab_size": preprocessing.num_buckets} if isinstance(preprocessing, TextPreprocessing) else {}
    try:
        return cls(preprocessing.input_shape, num_classes, **extra, **spec.options)
    except TypeError as exc:
        raise TicketpackError(f"bad options for model {spec.name!r}: {exc}") from None
    except ValueError as exc:
        raise TicketpackError(f"model {spec.name!r}: {exc}") from None
