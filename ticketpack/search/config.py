"""What `ticketpack search` is asked to do: one pydantic model shared by CLI flags, --config files and the manifest."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ticketpack.data.base import SplitConfig
from ticketpack.data.preprocessing import TextPreprocessing
from ticketpack.models.base import ModelSpec
from ticketpack.training.config import TrainConfig


class PruneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str | None = Field(
        None, description="Pruning strategy: global, layerwise or random (default: the model's, see SearchConfig)."
    )
    rate: float = Field(0.2, gt=0, lt=1, description="Fraction of the remaining weights pruned each round.")
    output_rate: float | None = Field(
        None, ge=0, lt=1, description="Rate for the output layer; default half of `rate` (Frankle & Carbin)."
    )
    rounds: int = Field(5, ge=0, le=100, description="Pruning rounds after the dense round 0.")
    target_sparsity: float | None = Field(
        None, gt=0, lt=1, description="Stop at the first round whose sparsity reaches this (overrides `rounds`)."
    )
    rewind_iter: int = Field(
        0, ge=0, description="Rewind survivors to the weights after this many steps (0: original init)."
    )
    granularity: Literal["weight", "neuron"] = Field(
        "weight",
        description="What a pruning step removes: single weights, or whole units (hidden neurons, conv channels, "
        "embedding dimensions; `rate` is then the fraction of remaining units) that export compacts into smaller layers.",
    )

    @property
    def effective_output_rate(self) -> float:
        return self.rate / 2 if self.output_rate is None else self.output_rate

    @property
    def planned_rounds(self) -> int:
        if self.target_sparsity is None:
            return self.rounds
        return max(1, math.ceil(math.log(1 - self.target_sparsity) / math.log(1 - self.rate) - 1e-9))


class SearchConfig(BaseModel):
    """A ticket search: dataset and source domain, model, training and pruning, seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field("digits", description="Dataset name (digits) or a directory of <domain>.jsonl/.csv files.")
    source: str = Field("clean", description="Source domain the ticket is found in.")
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(name="lenet-300-100"))
    text: TextPreprocessing | None = Field(None, description="Text preprocessing (text datasets only).")
    split: SplitConfig = Field(default_factory=SplitConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    seed: int = Field(0, ge=0, description="Seed for splits, initialization, data order and random pruning.")
    threads: int | None = Field(None, ge=1, description="Torch CPU threads (default: torch's choice).")

    @model_validator(mode="before")
    @classmethod
    def _default_strategy(cls, data):
        """Fill ``prune.strategy`` with the model's default (``global``; ``layerwise`` for text models, whose
        N(0, 1) embeddings would outweigh their small dense layers in a global ranking and empty them)."""
        if not isinstance(data, dict):
            return data
        prune = data.get("prune") or {}
        if isinstance(prune, BaseModel):
            prune = prune.model_dump()
        if prune.get("strategy") is None:
            from ticketpack.models.registry import default_strategy

            model = data.get("model") or {"name": "lenet-300-100"}
            name = model.name if isinstance(model, BaseModel) else model.get("name", "lenet-300-100")
            data = {**data, "prune": {**prune, "strategy": default_strategy(name)}}
        return data

    @model_validator(mode="after")
    def _check(self) -> "SearchConfig":
        from ticketpack.pruning.strategies import STRATEGIES

        STRATEGIES.get(self.prune.strategy)  # unknown names list the known ones
        return self


Status = Literal["in_progress", "complete"]
