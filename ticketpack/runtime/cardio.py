"""Put a model card into an ONNX model and read it back with the ``onnx`` package (torch-free).

Serving code can skip ``onnx`` entirely: ONNX Runtime exposes the same JSON as
``InferenceSession(path).get_modelmeta().custom_metadata_map["ticketpack"]`` (see ``ticketpack.runtime.predictor``).
"""

from __future__ import annotations

from pathlib import Path

import onnx

from ticketpack.core.errors import TicketpackError
from ticketpack.runtime.card import CARD_KEY, ModelCard, parse_card


def embed_card(model: onnx.ModelProto, card: ModelCard) -> None:
    """Write ``card`` as JSON under ``metadata_props["ticketpack"]`` (replacing an earlier card)."""
    keep = [(p.key, p.value) for p in model.metadata_props if p.key != CARD_KEY]
    del model.metadata_props[:]
    for key, value in [*keep, (CARD_KEY, card.model_dump_json())]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def card_json(model: onnx.ModelProto) -> str | None:
    for p in model.metadata_props:
        if p.key == CARD_KEY:
            return p.value
    return None


def load_model(path: Path | str) -> onnx.ModelProto:
    """Load an ONNX file (weights included), turning a missing or corrupt file into a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise TicketpackError(f"model file not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError and friends
        raise TicketpackError(f"{path} is not a readable ONNX file ({type(exc).__name__})") from None


def read_card(path: Path | str) -> ModelCard:
    """The validated card of an exported file (a one-line error if it has none or it is from another schema version)."""
    path = Path(path)
    model = load_model(path)
    text = card_json(model)
    if text is None:
        raise TicketpackError(f"{path} has no ticketpack card; export models with `ticketpack export` so they carry one")
    return parse_card(text, str(path))
