"""``InputKind``: everything that differs between kinds of input (images, text, tables) lives in one class per kind.

A kind is a pydantic model, so an instance is also the preprocessing spec that a ticket's manifest and an exported
model's card record; its methods are the code that applies it, torch-free, the same in training and in serving:

- what the model sees: :attr:`input_shape`, :attr:`input_dtype`, :meth:`transform` (raw inputs → model input),
  :meth:`example` (a model-ready batch to trace a model with) and :meth:`factory_options` (what a model factory is
  told besides the number of classes);
- what a user hands a served model: :meth:`read_inputs` (files for ``predict`` and ``evaluate --data-file``),
  :meth:`from_request` (the items of a JSON request), :meth:`smoke_inputs` and :meth:`show`;
- the same preprocessing as ONNX nodes (:meth:`raw_graph`), which a self-contained export puts in front of the
  model, so that any ONNX Runtime takes what a user has (:meth:`raw_array`: strings, uint8 images, raw rows).

A new kind is one subclass with a ``kind: Literal["name"]`` field, registered with
``ticketpack.data.kinds.KINDS.register("name", MyKind)`` (see docs/data.md); nothing else in ticketpack compares
kinds by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ticketpack.core.errors import TicketpackError


class InputRangeWarning(UserWarning):
    """Inputs beyond the range a model's training inputs had: its predictions for them extrapolate."""


@dataclass(frozen=True)
class OutOfRange:
    """The rows of a batch with values beyond the range recorded in training (:meth:`InputKind.transform_checked`)."""

    what: str  # "pixel values"
    rows: tuple[int, ...]  # row indices in the batch
    lowest: float  # the batch's smallest and largest value
    highest: float
    low: float  # the range recorded in training
    high: float
    total: int  # rows in the batch

    @classmethod
    def merge(cls, parts: list[tuple[int, OutOfRange | None]], total: int) -> OutOfRange | None:
        """One report for batches that were checked in pieces, each given with its first row's index."""
        found = [(offset, part) for offset, part in parts if part is not None]
        if not found:
            return None
        first = found[0][1]
        return cls(first.what, tuple(offset + r for offset, part in found for r in part.rows),
                   min(part.lowest for _, part in found), max(part.highest for _, part in found),
                   first.low, first.high, total)

    def message(self, noun: str = "inputs") -> str:
        shown = ", ".join(str(r) for r in self.rows[:5]) + (", ..." if len(self.rows) > 5 else "")
        return (f"{len(self.rows)} of {self.total} {noun} (#{shown}) hold {self.what} far outside the range the model "
                f"was trained on, {self.low:g} to {self.high:g} (this batch: {self.lowest:.4g} to {self.highest:.4g}): "
                "their predictions extrapolate and may mean nothing")


@dataclass(frozen=True)
class RawGraph:
    """ONNX nodes that compute :meth:`InputKind.transform` from what a user has (torch-free, built with
    ``onnx.helper``). Every name they create starts with ``raw/`` except ``output``, so they cannot collide with a
    model's own names."""

    input: Any  # onnx.ValueInfoProto of the raw input, named "raw" (strings (N,), uint8 images (N, H, W, C), ...)
    nodes: list  # onnx.NodeProto, in topological order
    initializers: list  # onnx.TensorProto
    output: str  # the tensor the nodes end in: the model's input, exactly as transform() makes it
    opsets: dict[str, int]  # domain ("" for ai.onnx, "com.microsoft", "ai.onnx.ml") → the opset the nodes need


class InputKind(BaseModel):
    """The preprocessing of one kind of input, and the code that applies it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str

    default_model: ClassVar[str] = "lenet-300-100"
    """The built-in model a search uses when none is named."""
    noun: ClassVar[str] = "inputs"
    """What a batch of raw inputs is called in messages ("images", "texts")."""
    file_types: ClassVar[tuple[str, ...]] = ()
    """Suffixes :meth:`read_inputs` reads (a directory is shown as "/")."""
    takes_text: ClassVar[bool] = False
    """Whether a JSON request's inputs are strings (else nested lists of numbers)."""

    @classmethod
    def stated_fields(cls) -> set[str]:
        """Fields that state something about the preprocessing or the data it was fitted on (``readOnly`` in the
        schema: the text featurization's recipe, the training pixel range), not options anyone sets."""
        return {name for name, f in cls.model_fields.items()
                if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("readOnly")}

    def options(self) -> dict[str, Any]:
        """This preprocessing as options (a search's ``preprocessing``): what reproduces its transform."""
        return self.model_dump(mode="json", exclude={"kind", *self.stated_fields()})

    @property
    def input_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def input_dtype(self) -> str:
        return "float32"

    def transform(self, raw: Any) -> np.ndarray:
        """A batch of raw inputs → the model's input array (``input_dtype``, shape (N, *input_shape))."""
        raise NotImplementedError

    @classmethod
    def fit(cls, sample: Any, options: dict[str, Any], where: str) -> "InputKind":
        """This kind's preprocessing for a domain, fitted to ``sample`` (raw training rows: statistics such as a
        per-channel mean) under ``options`` (what the dataset's reader found, then the user's own settings)."""
        return cls.from_options(options, where)

    @classmethod
    def from_options(cls, options: dict[str, Any], where: str) -> "InputKind":
        """``cls(**options)``, with a bad option named in one line."""
        try:
            return cls.model_validate({k: v for k, v in options.items() if k != "kind"})
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(map(str, first["loc"])) or "options"
            why = "not an option of this kind" if first["type"] == "extra_forbidden" else first["msg"]
            known = ", ".join(k for k in cls.model_fields if k != "kind")
            raise TicketpackError(f"{where}: preprocessing option {key!r}: {why} (options: {known})") from None

    def transform_checked(self, raw: Any) -> tuple[np.ndarray, OutOfRange | None]:
        """:meth:`transform`, and which rows go beyond the range of the training inputs, for kinds that record it
        (``predict`` and ``serve`` warn about those)."""
        return self.transform(raw), None

    def transform_all(self, raw: Any, where: str) -> tuple[np.ndarray, dict]:
        """:meth:`transform` of a whole domain, and what loading should report about it (``DomainData.info``)."""
        return self.transform(raw), {}

    def report(self, info: dict, where: str) -> None:
        """Warn about what :meth:`transform_all` found (each time a domain is loaded, also from the cache)."""

    def example(self, batch: int = 2) -> np.ndarray:
        """A small valid model-ready batch (tracing, export probes)."""
        return np.zeros((batch, *self.input_shape), dtype=self.input_dtype)

    def factory_options(self) -> dict[str, Any]:
        """Keyword arguments a model factory gets from this input, besides ``num_classes``."""
        return {"input_shape": tuple(self.input_shape)}

    def read_inputs(self, path: Path, labelled: bool = False) -> tuple[Any, list[str] | None]:
        """Raw inputs from a user's file (``predict --input``, ``evaluate --data-file``) and, if ``labelled``, their
        label names."""
        raise TicketpackError(f"{path}: this model's inputs cannot be read from files")

    def from_request(self, inputs: list) -> Any:
        """The items of a JSON request's ``inputs`` list → a raw batch for :meth:`transform`."""
        return inputs

    def request_bytes(self, max_text_chars: int) -> int:
        """The most bytes one input of a JSON request can take (the server's body limit is made of it)."""
        return 64 * int(np.prod(self.input_shape)) + 16

    def smoke_inputs(self) -> Any:
        """Two valid raw inputs (``validate`` and ``serve`` run them before trusting a file)."""
        raise NotImplementedError

    def show(self, raw: Any, i: int) -> str | None:
        """How ``predict`` shows raw input ``i`` beside its label (None: nothing worth printing)."""
        return None

    def raw_graph(self, output: str = "input") -> RawGraph:
        """This preprocessing as ONNX nodes ending in the tensor ``output``; raises :class:`TicketpackError` saying
        why where it cannot be expressed in ops ONNX Runtime runs."""
        raise TicketpackError(f"{self.kind} preprocessing has no ONNX form")

    def raw_array(self, raw: Any) -> np.ndarray:
        """A batch of raw inputs as the ``raw`` input of :meth:`raw_graph` takes it."""
        raise TicketpackError(f"{self.kind} preprocessing has no ONNX form")

    def check_compatible(self, other: "InputKind", what: str, other_what: str) -> None:
        """Refuse data of another kind than this (a ticket's or a model's) with one line that names both."""
        if type(other) is not type(self):
            raise TicketpackError(f"{other_what} holds {other.kind} inputs but {what} takes {self.kind} inputs")

    def describe(self) -> str:
        """One line for listings and messages."""
        return f"{self.kind} {'x'.join(map(str, self.input_shape))} {self.input_dtype}"
