"""Input kinds by name: ``image``, ``text``, ``tabular``, and any a user registers.

``Preprocessing`` is the field type that manifests, cards and configs use: a JSON object with a ``kind`` key,
validated by the registered class of that kind (so a kind registered by a user is read back like a built-in).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from ticketpack.core.registry import Registry
from ticketpack.data.kinds.base import InputKind, InputRangeWarning, OutOfRange
from ticketpack.data.kinds.image import ImagePreprocessing
from ticketpack.data.kinds.tabular import TabularPreprocessing
from ticketpack.data.kinds.text import TextPreprocessing

KINDS: Registry[type[InputKind]] = Registry("input kind")
KINDS.register("image", ImagePreprocessing)
KINDS.register("text", TextPreprocessing)
KINDS.register("tabular", TabularPreprocessing)


def register_kind(cls: type[InputKind]) -> type[InputKind]:
    """Register an :class:`InputKind` subclass under its ``kind`` field's default (usable as a decorator)."""
    name = cls.model_fields["kind"].default
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__name__} needs a field like kind: Literal['audio'] = 'audio'")
    KINDS.register(name, cls)
    return cls


def parse_kind(value: Any) -> InputKind:
    """An instance as is; a ``{"kind": ..., ...}`` mapping validated by its kind's class."""
    if isinstance(value, InputKind):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("preprocessing", "expected an object with a 'kind' key, got {got}",
                                  {"got": type(value).__name__})
    name = value.get("kind")
    if name not in KINDS:
        raise PydanticCustomError("preprocessing", "unknown input kind {kind!r}; known: {known}",
                                  {"kind": name, "known": ", ".join(KINDS.list())})
    try:
        return KINDS.get(name).model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise PydanticCustomError("preprocessing", "{kind} preprocessing{at}: {msg}",
                                  {"kind": name, "at": f" at {where}" if where else "", "msg": first["msg"]}) from None


Preprocessing = Annotated[
    InputKind,
    PlainValidator(parse_kind),
    PlainSerializer(lambda v: v.model_dump(mode="json"), return_type=dict),
    WithJsonSchema({
        "description": "How raw inputs become model inputs: an object whose 'kind' names a registered input kind "
        "(built in: image, text, tabular), with that kind's fields.",
        "oneOf": [cls.model_json_schema() for cls in (ImagePreprocessing, TextPreprocessing, TabularPreprocessing)],
    }),
]

__all__ = ["KINDS", "ImagePreprocessing", "InputKind", "InputRangeWarning", "OutOfRange", "Preprocessing",
           "TabularPreprocessing", "TextPreprocessing", "parse_kind", "register_kind"]
