"""The files a transfer run writes, as pydantic models.

``plan.json`` (:class:`TransferPlan`), ``jobs/<id>/result.json`` (:class:`JobResult`) and ``report.json``
(:class:`TransferReport`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ticketpack.runtime.spec import ModelSpec
from ticketpack.search.config import SearchConfig
from ticketpack.training.config import TrainConfig
from ticketpack.transfer.config import TransferConfig

PLAN_SCHEMA_VERSION = 2  # 2: plan.json and each result.json carry a digest over their content
REPORT_SCHEMA_VERSION = 2  # 2: paired differences, costs, standard errors, warnings
_DIGEST = ("sha256 of this file's canonical JSON without this field (sorted keys, no spaces), written by ticketpack; "
           "a file that does not match is refused.")


class Job(BaseModel):
    """One independent unit of work: a plain description any executor can ship to a worker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str = Field(description="Directory name under jobs/ (train jobs) or 'target-search'.")
    kind: Literal["train", "target-search"] = "train"
    init: str | None = Field(None, description="Initialization strategy (train jobs).")
    level: int = Field(0, description="Ticket round whose mask is used (0 for dense).")
    seed: int = Field(0, description="Seed index 0..N-1.")
    phase: int = Field(0, description="Jobs of phase 1 start once every phase-0 job has finished.")


class TransferPlan(BaseModel):
    """Everything a transfer run does, fixed before the first job starts; ``--resume`` must match it."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(PLAN_SCHEMA_VERSION, description="Version of this file's layout.")
    kind: Literal["transfer-plan"] = "transfer-plan"
    ticketpack_version: str
    created_at: datetime
    config: TransferConfig = Field(description="The configuration as given.")
    ticket: str = Field(description="Absolute path of the ticket directory.")
    ticket_manifest_sha256: str = Field(description="sha256 of the ticket's manifest.json.")
    model: ModelSpec
    source_dataset: str = Field(description="Dataset the ticket was found on (absolute path for directories).")
    source: str = Field(description="Source domain of the ticket.")
    dataset: str = Field(description="Dataset of the target domain (absolute path for directories).")
    target: str
    inits: list[str]
    levels: list[int] = Field(description="Ticket round numbers transferred.")
    level_weights_remaining: dict[int, float] = Field(description="Fraction of prunable weights kept, per level.")
    seeds: list[int] = Field(description="Seed indices.")
    seed: int = Field(description="Base seed.")
    train: TrainConfig = Field(description="Training used for every job (and for the target-ticket search).")
    target_search: SearchConfig | None = Field(None, description="IMP on the target, for `target-ticket`.")
    target_ticket: str | None = Field(
        None, description="Absolute path of a given target ticket (config.target_ticket) that replaces the search.")
    target_ticket_manifest_sha256: str | None = Field(None, description="sha256 of that ticket's manifest.json.")
    jobs: list[Job]
    digest: str | None = Field(None, description=_DIGEST)

    def identity(self) -> dict:
        """What a resumed run must share with the original (not the timestamps or how paths were spelled)."""
        return self.model_dump(exclude={"created_at", "ticketpack_version", "config", "digest"})


class JobResult(BaseModel):
    """One trained model of the grid: ``jobs/<job_id>/result.json``, written after its tensor files."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    level: int = Field(description="Ticket round of the mask (0 for dense).")
    weights_remaining: float = Field(description="Fraction of prunable weights kept by the mask used (1.0 dense).")
    init: str = Field(description="Initialization strategy.")
    seed: int = Field(description="Seed index.")
    target_val_accuracy: float = Field(description="Best target validation accuracy (the weights kept).")
    target_test_accuracy: float
    source_test_accuracy: float = Field(description="The same weights on the ticket's source-domain test split.")
    best_iteration: int
    seconds: float = Field(description="Wall time of the job's training.")
    cpu_seconds: float | None = Field(None, description="CPU time of the job's training (every thread of its process).")
    threads: int | None = Field(None, description="Torch intra-op threads the job trained with.")
    first_in_worker: bool = Field(
        False, description="The first job its worker process ran: its time includes the process's one-time start-up "
        "(torch's first calls, first allocations), which cost summaries report apart.")
    load_1min: float | None = Field(None, description="The machine's 1-minute load average when the job finished.")
    cores: int | None = Field(None, description="CPU cores of the machine the job ran on.")
    iterations: int = Field(0, description="Training steps run.")
    train_seed: int = Field(0, description="Seed of the data order (shared by every strategy of a seed index).")
    mask_sha256: str | None = Field(None, description="Content hash of the mask (None for dense).")
    weights_file_sha256: str | None = Field(
        "", description="sha256 of weights.safetensors; None: not written (the run's keep_weights was off).")
    mask_file_sha256: str | None = Field(None, description="sha256 of mask.safetensors (None for dense, or when "
                                         "the run's keep_weights was off).")
    target_round: int | None = Field(None, description="target-ticket: the round of the target search used.")
    target_val_n: int | None = Field(None, description="Examples in the target validation split.")
    target_test_n: int | None = Field(None, description="Examples in the target test split.")
    digest: str | None = Field(None, description=_DIGEST)


class Cell(BaseModel):
    """Mean and sample standard deviation over seeds of one (level, strategy)."""

    model_config = ConfigDict(extra="forbid")

    level: int
    init: str
    weights_remaining: float = Field(description="Mean fraction of weights kept over the seeds.")
    n: int = Field(description="Finished seeds.")
    target_test_mean: float
    target_test_std: float = Field(description="Sample standard deviation (0 with one seed).")
    target_test_se: float | None = Field(
        None, description="Binomial standard error of one accuracy at the mean on the target test split, "
        "sqrt(p(1-p)/n): the noise of the test split itself, which averaging seeds does not remove.")
    target_val_mean: float
    source_test_mean: float
    source_test_std: float
    iterations_mean: float = Field(0.0, description="Optimizer steps per job, mean over the seeds.")
    seconds_mean: float = Field(0.0, description="Training wall time per job (s), mean over the seeds.")


class PairedDifference(BaseModel):
    """``reference − other`` target test accuracy at one level, paired by seed index (same data order), with a
    95% t-interval over the pairs."""

    model_config = ConfigDict(extra="forbid")

    level: int
    weights_remaining: float
    reference: str = Field(description="Strategy the others are compared with (ticket).")
    other: str
    n: int = Field(description="Pairs (seeds where both finished).")
    mean: float = Field(description="Mean of reference − other (accuracy, 0-1).")
    low: float | None = Field(description="Lower end of the 95% interval (None with one pair).")
    high: float | None = Field(description="Upper end of the 95% interval (None with one pair).")
    resolved: bool = Field(description="The paired interval excludes 0: over these seeds, on this test split, the "
                           "two strategies differ by more than the seeds' own spread.")


class StrategyCost(BaseModel):
    """What re-training with a strategy costs, per trained model, next to what it buys."""

    model_config = ConfigDict(extra="forbid")

    init: str
    jobs: int
    iterations_mean: float = Field(description="Optimizer steps per job (mean).")
    seconds_mean: float = Field(description="Training wall time per job in seconds (mean over the jobs that were not "
                                "their worker's first; all of them if every job was).")
    cpu_seconds_mean: float | None = Field(None, description="Training CPU time per job in seconds, over the same jobs "
                                           "(at `threads` torch threads).")
    threads: int | None = Field(None, description="Torch threads per job.")
    startup_seconds: float | None = Field(
        None, description="How much longer, on average, a worker's first job took than the others: the worker's "
        "one-time start-up, charged to no strategy (None: no such job, or too few others).")
    search_iterations: int = Field(0, description="Steps of an IMP search this strategy needs first (target-ticket: "
                                   "the search on the target, all rounds), paid once per run.")
    search_seconds: float = Field(0.0, description="Wall time of that search (s): its setup (data, model) and every "
                                  "round (pruning, training, evaluation, files); training time only for tickets "
                                  "written before ticketpack recorded the rest.")
    search_cpu_seconds: float | None = Field(None, description="CPU time of that search (s), where recorded.")


class TransferReport(BaseModel):
    """A transfer run summarized: every finished job and the mean ± std per level and strategy."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(REPORT_SCHEMA_VERSION, description="Version of this file's layout.")
    kind: Literal["transfer-report"] = "transfer-report"
    ticketpack_version: str
    run_dir: str
    ticket: str
    ticket_manifest_sha256: str
    model: ModelSpec
    source_dataset: str
    source: str
    dataset: str
    target: str
    inits: list[str]
    levels: list[int]
    seeds: list[int]
    train: TrainConfig
    jobs_total: int = Field(description="Train jobs in the plan.")
    jobs_finished: int
    dense: Cell | None = Field(None, description="The dense reference, if `dense` was run.")
    cells: list[Cell] = Field(description="One per (level, strategy) with at least one finished seed.")
    paired: list[PairedDifference] = Field(default_factory=list, description="ticket − each other strategy, per level.")
    costs: list[StrategyCost] = Field(default_factory=list, description="Training cost per strategy.")
    source_search: StrategyCost | None = Field(None, description="The source ticket's own search (paid once, "
                                               "shared by every target it is transferred to), if its manifest is readable.")
    target_test_n: int | None = Field(None, description="Examples in the target test split.")
    resolvable_difference: float | None = Field(
        None, description="Smallest accuracy difference between two models that the target test split resolves at "
        "95% (1.96 × sqrt(2) × the binomial SE at the dense accuracy).")
    last_evaluation_best: float | None = Field(
        None, description="Share of the trained models whose best validation accuracy came at their last evaluation: "
        "still improving when training stopped (a recipe too short for them).")
    machine: dict[str, float | int | None] = Field(
        default_factory=dict, description="How busy the machine was: `cores`, and the 1-minute load average when the "
        "jobs finished (`load_mean`, `load_max`), for reading the seconds above.")
    warnings: list[str] = Field(default_factory=list, description="What the numbers cannot say (split too small, ...).")
    results: list[JobResult]
    files: dict[str, str] = Field(description="Other outputs of the run, relative to the run directory.")
