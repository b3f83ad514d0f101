"""``predict_rows``: raw inputs (texts, or a file) → a label and class probabilities per row. Torch-free."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.core.events import OnEvent, resolve_on_event, status
from ticketpack.data.kinds import InputRangeWarning, OutOfRange
from ticketpack.evaluate.config import PredictConfig
from ticketpack.runtime.predictor import empty_text_index, softmax

_CHUNK = 1024


class PredictionRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str | None = Field(None, description="The input as the model's kind shows it (text models: the text).")
    label: str = Field(description="Most probable label.")
    probability: float = Field(description="Probability of that label.")
    probabilities: list[float] = Field(description="Probability of every label, in the order of `labels`.")


class Predictions(BaseModel):
    """What `ticketpack predict --json` prints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    provider: str
    kind: str = Field(description="The model's input kind: image, text, tabular, ...")
    labels: list[str]
    rows: list[PredictionRow]
    warnings: list[str] = Field(
        default_factory=list, description="What the predictions cannot be trusted for, such as images with pixel "
        "values far outside the range the model was trained on (also printed on stderr)."
    )


def predict_rows(
    model: Path | str,
    texts: Sequence[str] | None = None,
    input_file: Path | str | None = None,
    config: PredictConfig | None = None,
    *,
    on_event: OnEvent | None = None,
    **overrides,
) -> Predictions:
    """A label and class probabilities per row of ``texts`` or of ``input_file``, by ``model`` on ONNX Runtime.

    ``config``: a :class:`~ticketpack.evaluate.config.PredictConfig` (default: its defaults); ``overrides``: any of its
    fields, which win over ``config``'s (``predict_rows(path, ["a text"], provider="cpu", threads=1)``). ``on_event``
    is called with ``Event("status", stage="predict", message=...)`` ("opening ...", "predicting ... rows")."""
    from ticketpack.core.config_files import with_overrides
    from ticketpack.runtime.predictor import load

    config = with_overrides(PredictConfig, config, overrides, "predict")
    say = status(resolve_on_event(on_event, "predict"), "predict")
    if texts and input_file is not None:
        raise FieldError("give texts or an `input_file`, not both")
    if not texts and input_file is None:
        raise FieldError("nothing to predict: give texts or an `input_file`")
    say(f"opening {model}")
    pred = load(model, provider=config.provider, threads=config.threads)
    prep = pred.card.preprocessing
    if texts:
        try:
            raw = prep.from_request(list(texts))
        except TicketpackError:
            raise FieldError(f"{model} is an {prep.kind} model: it takes {prep.noun}, not texts; give an `input_file` "
                             f"({', '.join(prep.file_types)})", fields=["input_file"]) from None
    else:
        raw, _ = prep.read_inputs(Path(input_file), labelled=False)
    if (i := empty_text_index(raw)) is not None:  # training refuses such texts, so no prediction for them
        where = f"{input_file}: row {i + 1}" if input_file is not None else f"text {i + 1}"
        raise TicketpackError(f"{where} is empty or only whitespace: give some text to classify")
    say(f"predicting {len(raw)} rows")
    chunks, checked = [], []
    for i in range(0, len(raw), _CHUNK):
        x, beyond = pred.prepare_checked(raw[i : i + _CHUNK])
        checked.append((i, beyond))
        chunks.append(softmax(pred.logits_from_inputs(x).astype(np.float64)).astype(np.float32))
    probs = np.concatenate(chunks)
    beyond = OutOfRange.merge(checked, len(raw))
    notes = [] if beyond is None else [beyond.message(prep.noun)]
    for note in notes:
        warnings.warn(note, InputRangeWarning, stacklevel=2)
    labels = pred.labels
    rows = [
        PredictionRow(
            text=prep.show(raw, i), label=labels[int(p.argmax())],
            probability=float(p.max()), probabilities=[round(float(v), 6) for v in p],
        )
        for i, p in enumerate(probs)
    ]
    return Predictions(model=str(model), provider=pred.provider, kind=prep.kind, labels=labels, rows=rows,
                       warnings=notes)
