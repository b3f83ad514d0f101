"""What `ticketpack search` is asked to do: one pydantic model shared by CLI flags, --config files and the manifest."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ticketpack.data.base import SplitConfig
from ticketpack.data.kinds import InputKind, TextPreprocessing
from ticketpack.runtime.spec import ModelSpec
from ticketpack.training.config import TrainConfig

AUTO_MODEL = "auto"

if TYPE_CHECKING:
    from ticketpack.pruning.strategies import Strategy


class PruneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    strategy: str | None = Field(
        None, description="Pruning strategy: global, layerwise, random or one you registered (default: the model's, "
        "see SearchConfig; `ticketpack list strategies`)."
    )
    strategy_options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the strategy (its own pydantic fields), checked against it."
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
    include: list[str] = Field(
        default_factory=list, description="Glob patterns over parameter names: prune only matching weights (default: "
        "every Linear, Conv1d/2d, Embedding and MultiheadAttention input-projection weight)."
    )
    exclude: list[str] = Field(default_factory=list, description="Glob patterns over parameter names: never prune these.")
    output_layer: str | None = Field(
        None, description="Module name of the output layer (pruned at output_rate); default: the prunable layer that "
        "produces the model's output, found by running an example batch."
    )
    retrain: Literal["weight-rewind", "lr-rewind", "finetune"] = Field(
        "weight-rewind",
        description="How each pruning round retrains: weight-rewind (survivors back to the weights of step "
        "rewind_iter, the checkpoint when one is given: Frankle & Carbin; Chen et al. 2020), lr-rewind (keep the "
        "trained weights and replay the learning-rate schedule from step rewind_iter: Renda et al. 2020) or finetune "
        "(keep the trained weights, train at finetune_lr).",
    )
    finetune_lr: float | None = Field(None, gt=0, description="finetune: the fixed learning rate (default: a tenth of "
                                      "train.lr).")
    granularity: Literal["weight", "neuron"] = Field(
        "weight",
        description="What a pruning step removes: single weights, or whole units (hidden neurons, conv channels, "
        "embedding dimensions, found by Torch-Pruning's dependency graph; `rate` is then the fraction of remaining "
        "units) that export compacts into smaller layers.",
    )

    @model_validator(mode="after")
    def _known_strategy(self) -> "PruneConfig":
        """An unknown strategy lists the known ones and a bad option names itself (the strategy is None only in a
        PruneConfig that a SearchConfig has yet to give its model's default)."""
        if self.strategy is not None:
            self.make_strategy()
        return self

    def make_strategy(self) -> Strategy:
        """The configured :class:`ticketpack.pruning.strategies.Strategy`, with its options."""
        from ticketpack.pruning.strategies import STRATEGIES

        return STRATEGIES.create(self.strategy, **self.strategy_options)

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

    dataset: str = Field(
        "digits", description="Dataset: a name (digits), a directory with one entry per domain (image folders, .npz, "
        ".csv/.parquet tables, .jsonl/.csv text) or path/to/file.py:factory.")
    source: str = Field("clean", description="Source domain the ticket is found in.")
    model: ModelSpec = Field(
        default_factory=lambda: ModelSpec(name=AUTO_MODEL),
        description="Default (auto): the input kind's model, lenet-300-100 for images and tables, fasttext for text.",
    )
    preprocessing: dict[str, Any] = Field(
        default_factory=dict, description="Options of the input kind's preprocessing over what is fitted to the data "
        "(images: resize, height, width, mean, std; text: ngrams, max_tokens, num_buckets, ...).")
    text: TextPreprocessing | None = Field(None, description="Text preprocessing (text datasets only; kept for "
                                           "older configs: the same as its options in `preprocessing`).")
    init_weights: str | None = Field(
        None, description="Start from your trained weights: a .safetensors file or a PyTorch state dict (read with "
        "weights_only=True, never unpickling code). Round 0 then evaluates them as they are, unless train_dense.")
    train_dense: bool = Field(False, description="With init_weights: train the dense model in round 0 too (otherwise "
                              "round 0 is the checkpoint as given).")
    split: SplitConfig = Field(default_factory=SplitConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    seed: int = Field(0, ge=0, description="Seed for splits, initialization, data order and random pruning.")
    threads: int | None = Field(None, ge=1, description="Torch CPU threads (default: torch's choice).")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data):
        """Fill what depends on other fields: the model's training recipe under the given ``train`` keys, and
        ``prune.strategy`` (the model's: ``global``; ``layerwise`` for text models, whose embeddings would outweigh
        their small dense layers in a global ranking and empty them). An unnamed model stays ``auto`` until the data
        says its kind (:meth:`for_input`)."""
        if not isinstance(data, dict):
            return data
        from ticketpack.models.registry import default_strategy, recipe

        def plain(value):
            if isinstance(value, str):  # model="convnet": the name alone
                return {"name": value}
            return value.model_dump(exclude_unset=True) if isinstance(value, BaseModel) else dict(value or {})

        data = dict(data)
        model = plain(data.get("model"))
        if isinstance(data.get("model"), str):
            data["model"] = model
        if "name" not in model:
            model["name"] = _known_default_model(data.get("dataset", "digits"))
            data["model"] = model
        if model["name"] == AUTO_MODEL:
            return data
        if recipe(model["name"]):
            data["train"] = {**recipe(model["name"]), **plain(data.get("train"))}
        prune = plain(data.get("prune"))
        if prune.get("strategy") is None:
            data["prune"] = {**prune, "strategy": default_strategy(model["name"])}
        return data

    @property
    def preprocessing_options(self) -> dict[str, Any]:
        """The user's preprocessing options (``text`` folded into ``preprocessing``)."""
        text = self.text.model_dump(exclude_unset=True, exclude={"kind"}) if self.text is not None else {}
        return {**text, **self.preprocessing}

    def for_input(self, preprocessing: InputKind) -> "SearchConfig":
        """This config with ``auto`` resolved to the input kind's default model (and that model's recipe and pruning
        strategy under what the user set)."""
        if self.model.name != AUTO_MODEL:
            return self
        given = self.model_dump(exclude_unset=True)
        given["model"] = {**given.get("model", {}), "name": preprocessing.default_model}
        return type(self).model_validate(given)


def _known_default_model(dataset: object) -> str:
    """The default model of a registered dataset that declares its input kind (``kind``); else ``auto``: the input
    kind's default, chosen once the data is read (:meth:`SearchConfig.for_input`)."""
    from ticketpack.data.kinds import KINDS
    from ticketpack.data.registry import DATASETS

    kind = getattr(DATASETS.get(dataset), "kind", None) if isinstance(dataset, str) and dataset in DATASETS else None
    return KINDS.get(kind).default_model if kind in KINDS else AUTO_MODEL


Status = Literal["in_progress", "complete"]
