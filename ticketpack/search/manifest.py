"""``manifest.json`` of a ticket directory: everything needed to trust and reuse the ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ticketpack.data.preprocessing import Preprocessing
from ticketpack.runtime.spec import ModelSource
from ticketpack.search.config import SearchConfig, Status

SCHEMA_VERSION = 2  # 2: the manifest carries a digest over its own content


class TensorFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Path relative to the ticket directory.")
    sha256: str = Field(description="sha256 of the file's bytes.")


class DatasetInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Registry name or directory the data came from.")
    kind: str = Field(description="Input kind (image, text, tabular, or one registered).")
    factory: dict[str, str | None] | None = Field(
        None, description="A dataset factory's source file and its sha256 when the search ran.")
    source_domain: str
    label_names: list[str] = Field(description="Class names in output-index order.")
    preprocessing: Preprocessing
    rows: int = Field(description="Rows in the source domain (before de-duplication).")
    file_sha256: str | None = Field(None, description="sha256 of the source domain file (text files).")
    split_sizes: dict[str, int] = Field(description="Rows in train/val/test.")


class RoundRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    round: int = Field(description="0 is the dense network; round r has pruned r times.")
    weights_remaining: float = Field(description="Fraction of prunable weights kept (0-1).")
    layer_remaining: dict[str, float] = Field(description="Fraction kept per prunable weight.")
    mask_sha256: str = Field(description="Content hash of the mask (same seed, same machine: same hash).")
    val_accuracy: float
    test_accuracy: float
    best_iteration: int = Field(description="Step with the best validation accuracy (the weights kept).")
    iterations: int
    seconds: float = Field(description="Wall time of the round's training.")
    wall_seconds: float | None = Field(
        None, description="Wall time of the whole round: pruning, training, evaluation and writing its files.")
    cpu_seconds: float | None = Field(
        None, description="CPU time of the whole round (every thread of the search process; see `threads`).")
    mask_file: TensorFile
    weights_file: TensorFile = Field(description="Trained weights at the best validation step.")


class Environment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    python: str
    torch: str
    platform: str


class TicketManifest(BaseModel):
    """A lottery ticket found by iterative magnitude pruning with rewinding."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(SCHEMA_VERSION, description="Version of this file's layout.")
    kind: Literal["ticket"] = "ticket"
    ticketpack_version: str
    created_at: datetime
    status: Status = Field(description="in_progress until the last round is written; --resume continues.")
    config: SearchConfig
    dataset: DatasetInfo
    prunable: dict[str, list[int]] = Field(description="Shape of each prunable weight.")
    output_names: list[str] = Field(description="Weights of the output layer (pruned at output_rate).")
    output_layer: str | None = Field(None, description="Module name of the output layer.")
    dense_layers: dict[str, str] | None = Field(
        None, description="Neuron granularity: each layer (or unit group, by its first layer) whose units stay dense, "
        "with why (a LayerNorm over them, a layer type no one registered, units that are the model's outputs, ...). "
        "{} when every layer with units can lose them; absent for weight granularity and in files from before."
    )
    model_source: ModelSource | None = Field(
        None, description="The model reference and the sha256 of its factory's source file when the search ran."
    )
    init_file: TensorFile = Field(description="θ0: the weights before any training (the checkpoint, when given).")
    init_weights_sha256: str | None = Field(None, description="sha256 of the checkpoint file the search started from.")
    device: str | None = Field(None, description="Device the search trained on (cpu, cuda:0 (name), ...).")
    setup_seconds: float | None = Field(
        None, description="Wall time before round 0 (loading and featurizing the data, building and tracing the "
        "model), in the run that created this directory.")
    setup_cpu_seconds: float | None = Field(None, description="CPU time of that setup (every thread of the process).")
    rewind_file: TensorFile | None = Field(None, description="θk: the rewind point (θ0 when rewind_iter is 0).")
    rounds: list[RoundRecord] = Field(default_factory=list)
    environment: Environment
    digest: str | None = Field(
        None, description="sha256 of this file's canonical JSON without this field (sorted keys, no spaces), written by "
        "ticketpack; it covers every field, the tensor files' sha256 included. A file that does not match is refused."
    )
