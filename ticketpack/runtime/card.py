"""The model card: a pydantic document embedded in every exported ONNX file under ``metadata_props["ticketpack"]``.

It holds everything needed to use and audit the model with the file alone: labels, input signature,
preprocessing, provenance, sparsity as exported, metrics at export time, the export options, the parity check
and a digest of the graph's weights. This module imports neither torch nor onnx: the predictor reads the card
through ONNX Runtime's ``custom_metadata_map``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ticketpack.core.errors import TicketpackError
from ticketpack.data.base import SplitConfig
from ticketpack.data.preprocessing import Preprocessing
from ticketpack.runtime.spec import ModelSource, ModelSpec

CARD_KEY = "ticketpack"
CARD_SCHEMA_VERSION = 1


class _Card(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Bounds every card ticketpack writes keeps, so that a card edited out of them is refused when it is read (validate,
# predict, serve, evaluate). What the file itself can prove beyond them (sparsity from the stored weights, the label
# count from the graph's output), `validate` recomputes; the rest a signature covers (ticketpack.runtime.signing).
Fraction = Annotated[float, Field(ge=0, le=1)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def _one_name(value: str) -> str:
    """A domain is an entry of its dataset: one name, never a path (no separator, no '.' or '..')."""
    if not value or value in (".", "..") or "/" in value or "\\" in value or not value.isprintable():
        raise ValueError(f"{value!r} is not a domain name (one printable name: no '/', '..' or control characters)")
    return value


def _printable(value: str) -> str:
    if not value or not value.isprintable():
        raise ValueError(f"{value!r} must be a non-empty string of printable characters")
    return value


DomainName = Annotated[str, AfterValidator(_one_name)]
Printable = Annotated[str, AfterValidator(_printable)]


class InputSignature(_Card):
    name: str = Field("input", description="Graph input name.")
    dtype: Literal["float32", "int64"]
    shape: list[int | str] = Field(description="Input shape; the first axis is the dynamic 'batch'.")


class RawInput(_Card):
    """What a self-contained file's graph takes: the raw inputs its preprocessing nodes turn into the model's input."""

    name: str = Field("raw", description="Graph input name.")
    dtype: Literal["uint8", "float32", "float64", "string"] = Field(
        description="string: texts (N,); uint8 or float32: images (N, H, W, C); float64: table rows (N, features).")
    shape: list[int | str] = Field(description="Input shape; the first axis is the dynamic 'batch'.")


class LayerSparsity(_Card):
    name: str = Field(description="Layer weight name as in the training model.")
    shape: list[Annotated[int, Field(ge=0)]] = Field(description="Shape of the weight as exported (after any compaction).")
    nonzero: int = Field(ge=0)
    total: int = Field(ge=1)
    weights_remaining: Fraction = Field(description="nonzero / total of the original (uncompacted) weight.")


class Sparsity(_Card):
    weights_remaining: float = Field(gt=0, le=1, description="Fraction of prunable weights kept, over all prunable layers.")
    nonzero: int = Field(ge=1)
    total: int = Field(ge=1, description="Prunable weights of the unpruned architecture.")
    layers: list[LayerSparsity] = Field(min_length=1)
    dense_layers: dict[str, str] | None = Field(
        None, description="Neuron granularity: the layers whose units the search left dense, each with why (from the "
        "ticket's manifest). Absent for weight granularity and in files from before it was recorded."
    )


class Provenance(_Card):
    ticketpack_version: Printable
    dataset: Printable = Field(description="The dataset as the ticket search was given it: a name, a directory or "
                               "file.py:factory (a relative path is relative to where that search ran).")
    source_domain: DomainName
    target_domain: DomainName | None = Field(None, description="Domain the weights were (re)trained on, if transferred.")
    init_strategy: str | None = Field(None, description="Transfer initialization strategy, if transferred.")
    level: int = Field(ge=0, description="Pruning round of the mask.")
    seed: int = Field(ge=0)
    ticket_manifest_sha256: Sha256 = Field(description="sha256 of the ticket's manifest.json.")
    run_dir: Printable | None = None
    exported_at: datetime
    pruning_strategy: str | None = Field(None, description="Strategy of the ticket search (global, layerwise, random).")
    granularity: str | None = Field(None, description="What the ticket search pruned: single weights or whole units (neuron).")
    split_seed: int | None = Field(None, ge=0, description="Seed of the train/val/test split the weights were trained and tested on.")
    split: SplitConfig | None = Field(None, description="Split fractions of that split.")
    init_weights_sha256: Sha256 | None = Field(None, description="sha256 of the user's checkpoint the ticket search "
                                            "started from, if any.")


class Metrics(_Card):
    test_accuracy: Fraction | None = Field(None, description="Accuracy of the exported model on the target (or source) test split.")
    dense_test_accuracy: Fraction | None = Field(None, description="Dense reference accuracy on the same split.")
    evaluated_on: str | None = Field(None, description="dataset/domain/split the metrics refer to.")
    reference_test_accuracy: Fraction | None = Field(
        None, description="PyTorch accuracy of the same weights on the same split (test_accuracy is the ONNX file's own)."
    )
    test_examples: int | None = Field(None, ge=1, description="Examples in the split the accuracies were measured on.")


class Calibration(_Card):
    """How static int8 quantization chose its activation ranges."""

    method: Literal["minmax", "entropy", "percentile"] = Field(description="ONNX Runtime's calibration method.")
    samples: int = Field(ge=1, description="Training examples run through the float graph to collect activation ranges.")
    seed: int = Field(ge=0, description="Seed of the sample drawn from the split (without replacement).")
    split: str = Field(description="dataset/domain/split the sample was drawn from.")


class SpeedVsDense(_Card):
    """The file's ONNX Runtime time per call against the unpruned dense float graph of the same model, measured at
    export on the export machine (see ticketpack.export.speed)."""

    ratios: dict[Annotated[int, Field(ge=1)], Annotated[float, Field(gt=0)]] = Field(
        description="Batch size → this file's graph's time / the dense float graph's for the same calls, the median "
        "over interleaved rounds in one process (above 1: slower than dense). A self-contained file's preprocessing "
        "nodes are not timed.")
    threads: int | None = Field(None, ge=1, description="ONNX Runtime intra-op threads (CPU); absent: its default.")
    cpus: int | None = Field(None, ge=1, description="Logical CPUs of the export machine.")
    rounds: int = Field(ge=1, description="Interleaved rounds (one timed sample of each graph, back to back) behind "
                        "the ratio of the batch size with the fewest; a ratio measured twice counts both.")
    onnxruntime: str = Field(description="ONNX Runtime release that ran both graphs.")


class ExportOptions(_Card):
    format: Literal["dense", "compact", "sparse"]
    quantize: Literal["none", "int8", "int8-static"] = Field(
        "none", description="int8: dynamic quantization (activation ranges at run time); int8-static: QDQ with "
        "activation ranges calibrated at export (see calibration)."
    )
    opset: int = Field(ge=1)
    route: Literal["torchscript", "dynamo"] | None = Field(
        None, description="The torch.onnx exporter that produced the graph: dynamo (the torch.export route) or "
        "torchscript (dynamo=False); absent in files exported before it was recorded."
    )
    min_onnxruntime: str | None = Field(
        None, description="Oldest onnxruntime release this file runs on (validate fails on an older one); absent in "
        "files exported before it was recorded."
    )
    calibration: Calibration | None = Field(None, description="int8-static: the calibration behind the activation ranges.")
    sparse_encoding: Literal["bitmask"] | None = Field(
        None,
        description="How the weights in bitmask_encoded are stored: nonzero values plus a packed bit mask per weight, "
        "expanded by a small subgraph of standard ops that ONNX Runtime constant-folds when the session is created. "
        "None when no weight is stored so (every format but sparse; sparse when no weight had zeros enough).",
    )
    bitmask_encoded: list[str] | None = Field(
        None,
        description="The initializers stored as values plus bit mask (sparse format: each weight the encoding makes "
        "smaller by a quarter and 512 bytes or more). [] when none is, as for a neuron-granularity ticket or a "
        "fastText ticket, whose zeros compaction removed: the file then stores every weight as compact does. Absent "
        "in files exported before it was recorded.",
    )
    rank_encoded: list[str] | None = Field(
        None,
        description="Id remaps of compacted embeddings stored as their bits alone (any format); absent in files "
        "exported before it was recorded.",
    )
    compacted: dict[str, list[int]] | None = Field(
        None, description="compact/sparse: [kept, original] size of each unit group and input, by weight name."
    )
    self_contained: bool | None = Field(
        None, description="The graph starts with the preprocessing as ONNX nodes: it takes raw_input (what a user has: "
        "strings, images, table rows) and answers logits, probabilities and label (class names); the card's input is "
        "then a tensor inside the graph. Absent in files exported before it was recorded (not self-contained)."
    )
    raw_input: RawInput | None = Field(None, description="self_contained: the graph's raw input.")
    speed_vs_dense: SpeedVsDense | None = Field(
        None, description="This file's speed against the unpruned dense float graph on the export machine; absent "
        "when the file is that graph (dense, not quantized), when the check was turned off (speed_check false) and "
        "in files exported before it was recorded."
    )

    @model_validator(mode="after")
    def _raw_input_when_self_contained(self) -> "ExportOptions":
        if bool(self.self_contained) != (self.raw_input is not None):
            raise ValueError("raw_input is recorded exactly when self_contained is true")
        return self

    @field_validator("compacted")
    @classmethod
    def _kept_of_original(cls, v: dict[str, list[int]] | None) -> dict[str, list[int]] | None:
        for name, sizes in (v or {}).items():
            if len(sizes) != 2 or not 0 <= sizes[0] <= sizes[1] or sizes[1] < 1:
                raise ValueError(f"{name}: {sizes} is not [kept, original] with 0 <= kept <= original")
        return v


class ParityCheck(_Card):
    examples: int = Field(ge=1)
    max_abs_diff: float = Field(ge=0, description="Largest |ORT logit - PyTorch logit| on the held-out batch.")
    argmax_agreement: Fraction = Field(description="Fraction of examples whose predicted class agrees.")
    atol: float = Field(gt=0, description="Tolerance the export was held to.")
    float_max_abs_diff: float | None = Field(
        None, ge=0, description="int8 exports: max |ORT - PyTorch| of the float graph before quantization (held to atol)."
    )
    min_argmax_agreement: Fraction | None = Field(
        None, description="int8 exports: the smallest argmax agreement accepted (quantized logits are not held to atol)."
    )


class ModelCard(_Card):
    """What an exported ticketpack ONNX model is, where it came from and how to feed it."""

    schema_version: int = Field(CARD_SCHEMA_VERSION, description="Version of the card layout.")
    task: Literal["classification"] = "classification"
    label_names: list[str] = Field(min_length=2, description="Class names in logit order, each once.")
    input: InputSignature
    output_name: str = "logits"
    preprocessing: Preprocessing
    model: ModelSpec
    model_source: ModelSource | None = Field(
        None, description="The model reference and the sha256 of its factory's source file at search time (user models)."
    )
    provenance: Provenance
    sparsity: Sparsity
    metrics: Metrics
    export: ExportOptions
    parity: ParityCheck | None = None
    weights_digest: Sha256 = Field(description="sha256 over the graph's initializers (see ticketpack.runtime.digest).")

    @field_validator("label_names")
    @classmethod
    def _distinct_labels(cls, v: list[str]) -> list[str]:
        seen = set()
        for name in v:
            if not name or name in seen:
                raise ValueError(f"label {name!r} is {'empty' if not name else 'named twice'}; each class has its own name")
            seen.add(name)
        return v


def parse_card(text: str, where: str = "model") -> ModelCard:
    """Validate card JSON, naming a schema version from the future or a broken field."""
    try:
        version = json.loads(text).get("schema_version")
    except (json.JSONDecodeError, AttributeError):
        raise TicketpackError(f"{where}: the ticketpack card is not valid JSON") from None
    if version != CARD_SCHEMA_VERSION:
        newer = isinstance(version, int) and version > CARD_SCHEMA_VERSION
        hint = "; upgrade ticketpack to read it" if newer else ""
        raise TicketpackError(
            f"{where}: card schema version {version}, this ticketpack reads version {CARD_SCHEMA_VERSION}{hint}"
        )
    try:
        return ModelCard.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's own message
        raise TicketpackError(f"{where}: invalid ticketpack card at {'.'.join(map(str, first['loc']))}: {msg}") from None
