"""What `ticketpack evaluate` and `ticketpack predict` are asked to do: the pydantic models behind their flags and
``--config`` files (the models to measure and the inputs to classify are given on the command line)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ticketpack.evaluate.report import Gates

Provider = Literal["auto", "cpu", "cuda"]
PROVIDER_HELP = "ONNX Runtime provider: auto (CUDA if ONNX Runtime offers it, else CPU), cpu or cuda."


class EvaluateConfig(BaseModel):
    """How to measure an exported model: on which data, against which baseline, where, and the gates it must pass."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    dataset: str | None = Field(None, description="Dataset (digits or a directory); default: the card's.")
    domain: str | None = Field(
        None, description="Domain whose test split is used; default: the card's target (or source)."
    )
    data_file: Path | None = Field(None, description="Labelled JSONL/CSV file to evaluate on instead of a test split.")
    split_seed: int | None = Field(
        None, ge=0, description="Seed of the train/val/test split the test rows come from; default: the card's, so "
        "that they are the rows the model was tested on."
    )
    baseline: Path | None = Field(None, description="Another ONNX model (e.g. the dense export) measured side by side.")
    provider: Provider = Field("auto", description=PROVIDER_HELP)
    threads: int | None = Field(None, ge=1, description="ONNX Runtime intra-op threads (default: ONNX Runtime's).")
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 32, 256], description="Batch sizes to time.")
    latency_budget_s: float = Field(2.0, gt=0, description="Most seconds of timed runs per batch size.")
    gates: Gates = Field(default_factory=Gates, description="Pass/fail limits; exit 1 when one fails.")


class PredictConfig(BaseModel):
    """Where `ticketpack predict` runs the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Provider = Field("auto", description=PROVIDER_HELP)
    threads: int | None = Field(None, ge=1, description="ONNX Runtime intra-op threads (default: ONNX Runtime's).")
