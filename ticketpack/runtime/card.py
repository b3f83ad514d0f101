"""The model card: a pydantic document embedded in every exported ONNX file under ``metadata_props["ticketpack"]``.

It holds everything needed to use and audit the model with the file alone: labels, input signature,
preprocessing, provenance, sparsity as exported, metrics at export time, the export options, the parity check
and a digest of the graph's weights. This module imports neither torch nor onnx: the predictor reads the card
through ONNX Runtime's ``custom_metadata_map``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ticketpack.data.base import SplitConfig
from ticketpack.data.preprocessing import Preprocessing
from ticketpack.errors import TicketpackError
from ticketpack.runtime.spec import ModelSource, ModelSpec

CARD_KEY = "ticketpack"
CARD_SCHEMA_VERSION = 1


class _Card(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSignature(_Card):
    name: str = Field("input", description="Graph input name.")
    dtype: Literal["float32", "int64"]
    shape: list[int | str] = Field(description="Input shape; the first axis is the dynamic 'batch'.")


class LayerSparsity(_Card):
    name: str = Field(description="Layer weight name as in the training model.")
    shape: list[int] = Field(description="Shape of the weight as exported (after any compaction).")
    nonzero: int
    total: int
    weights_remaining: float = Field(description="nonzero / total of the original (uncompacted) weight.")


class Sparsity(_Card):
    weights_remaining: float = Field(description="Fraction of prunable weights kept, over all prunable layers.")
    nonzero: int
    total: int = Field(description="Prunable weights of the unpruned architecture.")
    layers: list[LayerSparsity]


class Provenance(_Card):
    ticketpack_version: str
    dataset: str
    source_domain: str
    target_domain: str | None = Field(None, description="Domain the weights were (re)trained on, if transferred.")
    init_strategy: str | None = Field(None, description="Transfer initialization strategy, if transferred.")
    level: int = Field(description="Pruning round of the mask.")
    seed: int
    ticket_manifest_sha256: str = Field(description="sha256 of the ticket's manifest.json.")
    run_dir: str | None = None
    exported_at: datetime
    pruning_strategy: str | None = Field(None, description="Strategy of the ticket search (global, layerwise, random).")
    granularity: str | None = Field(None, description="What the ticket search pruned: single weights or whole units (neuron).")
    split_seed: int | None = Field(None, description="Seed of the train/val/test split the weights were trained and tested on.")
    split: SplitConfig | None = Field(None, description="Split fractions of that split.")
    init_weights_sha256: str | None = Field(None, description="sha256 of the user's checkpoint the ticket search "
                                            "started from, if any.")


class Metrics(_Card):
    test_accuracy: float | None = Field(None, description="Accuracy of the exported model on the target (or source) test split.")
    dense_test_accuracy: float | None = Field(None, description="Dense reference accuracy on the same split.")
    evaluated_on: str | None = Field(None, description="dataset/domain/split the metrics refer to.")
    reference_test_accuracy: float | None = Field(
        None, description="PyTorch accuracy of the same weights on the same split (test_accuracy is the ONNX file's own)."
    )
    test_examples: int | None = Field(None, description="Examples in the split the accuracies were measured on.")


class Calibration(_Card):
    """How static int8 quantization chose its activation ranges."""

    method: Literal["minmax", "entropy", "percentile"] = Field(description="ONNX Runtime's calibration method.")
    samples: int = Field(description="Training examples run through the float graph to collect activation ranges.")
    seed: int = Field(description="Seed of the sample drawn from the split (without replacement).")
    split: str = Field(description="dataset/domain/split the sample was drawn from.")


class ExportOptions(_Card):
    format: Literal["dense", "compact", "sparse"]
    quantize: Literal["none", "int8", "int8-static"] = Field(
        "none", description="int8: dynamic quantization (activation ranges at run time); int8-static: QDQ with "
        "activation ranges calibrated at export (see calibration)."
    )
    opset: int
    min_onnxruntime: str | None = Field(
        None, description="Oldest onnxruntime release this file runs on (validate fails on an older one); absent in "
        "files exported before it was recorded."
    )
    calibration: Calibration | None = Field(None, description="int8-static: the calibration behind the activation ranges.")
    sparse_encoding: Literal["bitmask"] | None = Field(
        None,
        description="sparse format: nonzero values plus a packed bit mask per weight, expanded by a small subgraph of "
        "standard ops that ONNX Runtime constant-folds when the session is created.",
    )
    compacted: dict[str, list[int]] | None = Field(
        None, description="compact/sparse: [kept, original] size of each unit group and input, by weight name."
    )


class ParityCheck(_Card):
    examples: int
    max_abs_diff: float = Field(description="Largest |ORT logit - PyTorch logit| on the held-out batch.")
    argmax_agreement: float = Field(description="Fraction of examples whose predicted class agrees.")
    atol: float = Field(description="Tolerance the export was held to.")
    float_max_abs_diff: float | None = Field(
        None, description="int8 exports: max |ORT - PyTorch| of the float graph before quantization (held to atol)."
    )
    min_argmax_agreement: float | None = Field(
        None, description="int8 exports: the smallest argmax agreement accepted (quantized logits are not held to atol)."
    )


class ModelCard(_Card):
    """What an exported ticketpack ONNX model is, where it came from and how to feed it."""

    schema_version: int = Field(CARD_SCHEMA_VERSION, description="Version of the card layout.")
    task: Literal["classification"] = "classification"
    label_names: list[str] = Field(description="Class names in logit order.")
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
    weights_digest: str = Field(description="sha256 over the graph's initializers (see ticketpack.runtime.digest).")


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
        raise TicketpackError(f"{where}: invalid ticketpack card at {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
