"""``ticketpack.load(path)``: an exported classifier with its card, for raw inputs. Needs only ONNX Runtime and numpy.

    clf = ticketpack.load("model.onnx")
    clf.predict(["great battery life", "broke after a week"])      # → ["1", "0"]
    clf.predict_proba(images)                                      # → (N, classes) float32
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np

from ticketpack.core.errors import TicketpackError
from ticketpack.data.kinds import InputRangeWarning, OutOfRange
from ticketpack.runtime.card import CARD_KEY, ModelCard, parse_card
from ticketpack.runtime.selfcontained import RAW_INPUT, is_self_contained
from ticketpack.runtime.session import make_session


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def empty_text_index(texts) -> int | None:
    """Index of the first text that is empty or only whitespace (training refuses those texts too), or None."""
    for i, text in enumerate(texts):
        if isinstance(text, str) and not text.strip():
            return i
    return None


def check_texts(texts) -> None:
    i = empty_text_index(texts)
    if i is not None:
        raise TicketpackError(f"text input {i} is empty or only whitespace: give some text to classify")


class Predictor:
    """One ONNX Runtime session plus the card that says how to feed it. Safe to share across threads.

    A self-contained file (``export --self-contained``) is predicted by its own graph from raw inputs
    (:meth:`raw_checked` → :meth:`outputs_from_raw`: logits, probabilities and labels computed in the graph);
    :attr:`session` and :meth:`logits_from_inputs` still take the model's input tensor, through the same file cut at
    that tensor in memory (opened on first use)."""

    def __init__(self, path: Path | str, provider: str = "auto", threads: int | None = None) -> None:
        self.path = Path(path)
        session, self.provider = make_session(self.path, provider, threads)
        meta = session.get_modelmeta().custom_metadata_map
        if CARD_KEY not in meta:
            raise TicketpackError(
                f"{self.path} has no ticketpack card; export models with `ticketpack export` so they carry one"
            )
        self.card: ModelCard = parse_card(meta[CARD_KEY], str(self.path))
        self.input_name = self.card.input.name
        self.output_name = self.card.output_name
        self.self_contained = is_self_contained(self.card)
        self.graph_session = session if self.self_contained else None  # raw → logits, probabilities, label
        self._session = None if self.self_contained else session
        self._threads = threads
        self._lock = threading.Lock()

    @property
    def session(self):
        """The ONNX Runtime session that takes the model's input tensor (the card's ``input``)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    from ticketpack.runtime.cardio import load_model
                    from ticketpack.runtime.selfcontained import model_input_graph

                    cut = model_input_graph(load_model(self.path), self.input_name, self.output_name)
                    self._session = make_session(cut.SerializeToString(), self.provider, self._threads)[0]
        return self._session

    @property
    def labels(self) -> list[str]:
        return list(self.card.label_names)

    @property
    def kind(self) -> str:
        return self.card.preprocessing.kind

    def prepare(self, batch) -> np.ndarray:
        """Raw inputs (strings for text models, pixel arrays for image models) → the graph's input tensor; an
        :class:`InputRangeWarning` for inputs beyond the range the card records for the training inputs."""
        x, beyond = self.prepare_checked(batch)
        if beyond is not None:
            warnings.warn(beyond.message(self.card.preprocessing.noun), InputRangeWarning, stacklevel=2)
        return x

    def prepare_checked(self, batch) -> tuple[np.ndarray, OutOfRange | None]:
        """:meth:`prepare` without the warning: the tensor, and which inputs go beyond the training range (None:
        none, or a kind that records no range)."""
        if batch is None or len(batch) == 0:
            raise TicketpackError("empty batch: give at least one input")
        return self.card.preprocessing.transform_checked(batch)

    def raw_checked(self, batch) -> tuple[np.ndarray, OutOfRange | None]:
        """Self-contained files: raw inputs → the graph's ``raw`` tensor, and which inputs go beyond the training
        range (kinds that record it)."""
        if batch is None or len(batch) == 0:
            raise TicketpackError("empty batch: give at least one input")
        prep = self.card.preprocessing
        checked = getattr(prep, "raw_array_checked", None)
        return checked(batch) if checked is not None else (prep.raw_array(batch), None)

    def outputs_from_raw(self, raw: np.ndarray, names: tuple[str, ...] = ("logits", "probabilities", "label")) -> list:
        """Self-contained files: the graph's outputs (``logits``, ``probabilities``, ``label``) for a raw tensor."""
        if self.graph_session is None:
            raise TicketpackError(f"{self.path} is not self-contained: it takes the model's input tensor")
        try:
            return self.graph_session.run(list(names), {RAW_INPUT: raw})
        except Exception as exc:  # onnxruntime's own error types
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise TicketpackError(f"{self.path}: ONNX Runtime could not run this input ({first})") from None

    def _raw(self, batch) -> np.ndarray:
        raw, beyond = self.raw_checked(batch)
        if beyond is not None:
            warnings.warn(beyond.message(self.card.preprocessing.noun), InputRangeWarning, stacklevel=3)
        return raw

    def logits_from_inputs(self, x: np.ndarray) -> np.ndarray:
        """Logits for an already prepared input tensor (dtype and shape as the card's input signature)."""
        want = self.card.input
        if not isinstance(x, np.ndarray) or x.dtype != np.dtype(want.dtype):
            got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise TicketpackError(f"model input must be a {want.dtype} array, got {got}; use .predict() for raw inputs")
        fixed = [d if isinstance(d, int) else None for d in want.shape[1:]]
        if x.ndim != len(want.shape) or any(f is not None and f != d for f, d in zip(fixed, x.shape[1:])):
            raise TicketpackError(f"model input must have shape {want.shape}, got {list(x.shape)}")
        try:
            return self.session.run([self.output_name], {self.input_name: x})[0]
        except Exception as exc:  # onnxruntime's own error types (bad ids, shapes the card did not catch)
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise TicketpackError(f"{self.path}: ONNX Runtime could not run this input ({first})") from None

    def logits(self, batch) -> np.ndarray:
        if self.self_contained:
            return self.outputs_from_raw(self._raw(batch), ("logits",))[0]
        return self.logits_from_inputs(self.prepare(batch))

    def predict_proba(self, batch) -> np.ndarray:
        if self.self_contained:
            return self.outputs_from_raw(self._raw(batch), ("probabilities",))[0]
        return softmax(self.logits(batch).astype(np.float64)).astype(np.float32)

    def predict(self, batch) -> list[str]:
        if self.self_contained:
            return [str(label) for label in self.outputs_from_raw(self._raw(batch), ("label",))[0]]
        return [self.card.label_names[i] for i in self.logits(batch).argmax(axis=1)]


def load(path: Path | str, provider: str = "auto", threads: int | None = None) -> Predictor:
    """Open an exported ticketpack ONNX model for prediction (torch is never imported)."""
    return Predictor(path, provider, threads)
