"""The HTTP API's request and response bodies (pydantic only): the server's OpenAPI document is generated from these,
and a Python client can use them to build requests and read answers."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, Strict

from ticketpack.runtime.card import ExportOptions, InputSignature, Metrics, Provenance

Pixel = Annotated[float, Strict()]  # a JSON number; "1.0" (a string) is refused, not coerced
Image = Union[list[Pixel], list[list[Pixel]], list[list[list[Pixel]]]]  # flat C*H*W, H×W, or C×H×W

Texts = Annotated[list[str], Field(min_length=1, title="Texts")]
Images = Annotated[list[Image], Field(min_length=1, title="Images")]


class PredictRequest(BaseModel):
    """A batch of raw inputs: strings for text models; images as nested lists of pixel values for image models."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"inputs": ["great battery life", "broke after a week"]}]},
    )

    inputs: Union[Texts, Images] = Field(
        description="One batch: at least one input and at most the server's --max-batch; each text at most "
        "--max-text-chars characters. Images: flat (C*H*W), H×W, H×W×C or C×H×W lists of raw pixel values; table "
        "rows: lists of numbers in column order."
    )


class Prediction(BaseModel):
    label: str = Field(description="The most probable class.")
    probability: float = Field(description="Its probability.")
    probabilities: dict[str, float] = Field(description="Probability of every class, in the model's label order.")


class PredictResponse(BaseModel):
    model: str = Field(description="Name of the model that answered.")
    predictions: list[Prediction] = Field(description="One per input, in request order.")
    warnings: list[str] | None = Field(
        None, description="Only when some predictions cannot be trusted: e.g. images with pixel values beyond the "
        "range the model's training images had (which ones, and that range)."
    )


class ModelInfo(BaseModel):
    """A served model, from the card embedded in its ONNX file."""

    name: str
    kind: str = Field(description="Input kind: image, text, tabular or one registered.")
    labels: list[str] = Field(description="Class names in output order.")
    input: InputSignature = Field(description="The graph's input (after preprocessing).")
    weights_remaining: float = Field(description="Fraction of the prunable weights kept (1.0: dense).")
    architecture: str = Field(description="Registry name of the architecture.")
    provenance: Provenance
    metrics: Metrics = Field(description="Accuracy recorded at export time.")
    export: ExportOptions
    weights_digest: str = Field(description="sha256 over the graph's weights, as in the card.")
    file: str = Field(description="File name of the served ONNX model.")
    provider: str = Field(description="ONNX Runtime execution provider in use (cpu or cuda).")


class ModelList(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool = Field(description="True once every model is loaded and its smoke inference passed.")
    models: dict[str, str] = Field(description="Per model: 'ok', or why it is not ready.")


class ErrorBody(BaseModel):
    """Every error answer (4xx/5xx) has this body."""

    error: str = Field(description="Machine-readable code, e.g. model_not_found, batch_too_large, invalid_request.")
    message: str = Field(description="What went wrong, for a person.")
    field: str | None = Field(None, description="The offending request field as a dotted path (e.g. inputs.3), if any.")
