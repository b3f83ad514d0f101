"""The result document of `ticketpack evaluate`, and the gates a CI run sets (`ticketpack validate`'s report is
:class:`ticketpack.runtime.validate.ValidationReport`).

Both are pydantic models: the CLI renders them, ``--json`` writes them, ``schemas/`` holds their JSON Schemas.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ticketpack.core.errors import GateFailed

EVALUATION_SCHEMA_VERSION = 3  # 2: size and memory ratios read model / baseline; weights_digest_verified
# 3: latency figures state calls_per_run (short calls are timed in groups)


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Gates(_Doc):
    """Pass/fail limits for `ticketpack evaluate`; a gate left at None is not checked."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    min_accuracy: float | None = Field(None, ge=0, le=1, description="Lowest acceptable test accuracy (0-1).")
    max_accuracy_drop: float | None = Field(
        None, ge=0, le=1,
        description="Largest acceptable accuracy drop (0-1) below the baseline, or below the card's dense reference "
        "when there is no baseline.",
    )
    max_p50_ms: dict[int, float] = Field(
        default_factory=dict, description="Batch size → largest acceptable median latency in milliseconds."
    )
    min_speedup: float | None = Field(
        None, gt=0,
        description="Smallest acceptable baseline p50 / model p50 at the largest measured batch size (needs a baseline).",
    )
    max_size_mb: float | None = Field(None, gt=0, description="Largest acceptable model file size in MB (10^6 bytes).")

    def any(self) -> bool:
        return any(v not in (None, {}) for v in self.model_dump().values())


# ---------------------------------------------------------------- evaluate


class LatencyStats(_Doc):
    batch_size: int
    runs: int = Field(description="Timed runs after warm-up, each of calls_per_run calls.")
    calls_per_run: int = Field(
        1, ge=1,
        description="Calls of session.run that each timed run covers, so each figure (p50, p90, p99, mean) is of "
        "the mean call time within runs of this many calls. Calls shorter than 0.1 ms are timed in groups (timeit's "
        "autorange: 1, 2, 5, 10, 20, 50, ... calls, until one run lasts 0.1 ms), so that the clock's resolution and "
        "overhead do not dominate them; then p90 and p99 describe groups, not single calls. 1: single calls.")
    warmup_runs: int = Field(description="Untimed calls before the timed runs, with those that set calls_per_run.")
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput_per_s: float = Field(
        description="Examples per second: batch_size × runs × calls_per_run / total timed seconds.")
    median_ci_pct: float = Field(
        description="Half-width of the ~95% confidence interval of the median (order statistics), in % of the median."
    )
    stable: bool = Field(description="The median's interval reached the target before the time budget ran out.")


class ClassAccuracy(_Doc):
    label: str
    support: int = Field(description="Test examples of this class.")
    accuracy: float | None = Field(description="Share of this class predicted correctly (recall); None if no examples.")


class ModelResult(_Doc):
    """One model's figures from an evaluation run."""

    weights_digest_verified: bool = Field(
        False, description="The graph's weights digest was recomputed and matched its card's before measuring "
        "(evaluate refuses a model whose weights do not match).")

    path: str
    file_bytes: int
    compressed_bytes: int = Field(description="Size after zlib (level 6): what the file costs to ship or store.")
    format: str | None = Field(None, description="Export format from the card (dense, compact, sparse).")
    quantize: str | None = None
    weights_remaining: float | None = Field(None, description="From the card's sparsity section.")
    accuracy: float
    accuracy_se: float | None = Field(None, description="Binomial standard error of the accuracy on these examples, "
                                      "sqrt(p(1-p)/n).")
    per_class: list[ClassAccuracy]
    confusion_matrix: list[list[int]] = Field(description="Rows: true label; columns: predicted label (card order).")
    latency: list[LatencyStats]
    peak_memory_mb: float | None = Field(
        None,
        description="Peak resident (CPU) memory added by creating this model's session and running its largest "
        "batch twice, in a fresh Python process after ONNX Runtime's one-time set-up (Linux VmHWM after a reset "
        "minus VmRSS before); None where /proc is unavailable. GPU memory is not included.",
    )
    card_test_accuracy: float | None = Field(None, description="The accuracy the card recorded at export.")
    card_dense_accuracy: float | None = Field(None, description="The card's dense reference accuracy, if recorded.")
    card_evaluated_on: str | None = Field(None, description="dataset/domain/split of the card's accuracies.")


class SpeedUp(_Doc):
    batch_size: int
    speedup: float = Field(description="Baseline p50 / model p50 (above 1: the model is faster).")


class Comparison(_Doc):
    """The model against the baseline, measured side by side in one process."""

    speedup: list[SpeedUp]
    size_ratio: float = Field(description="Model file bytes / baseline file bytes (below 1: the model is smaller).")
    compressed_size_ratio: float = Field(description="Model zlib bytes / baseline zlib bytes (below 1: smaller).")
    accuracy_delta: float = Field(description="Model accuracy - baseline accuracy.")
    accuracy_delta_se: float | None = Field(
        None, description="Standard error of the accuracy delta, paired over the same examples (the spread of the "
        "per-example difference in correctness / sqrt(n)).")
    memory_ratio: float | None = Field(
        None, description="Model peak memory / baseline peak memory (below 1: the model uses less).")


class GateResult(_Doc):
    name: str
    passed: bool
    value: float | None
    limit: float
    detail: str


class EvaluationReport(_Doc):
    """What `ticketpack evaluate` measured: accuracy, latency, size and memory, with gate outcomes."""

    schema_version: int = EVALUATION_SCHEMA_VERSION
    ticketpack_version: str
    onnxruntime_version: str
    provider: str = Field(description="Execution provider actually used: cpu or cuda.")
    threads: int | None = Field(description="ONNX Runtime intra-op threads (None: ORT's default, all cores).")
    dataset: str | None
    domain: str | None
    data_file: str | None
    split: str | None = Field(description="'test' for a dataset domain; None for a data file.")
    seed: int | None = Field(description="Split seed (the card's split seed unless overridden).")
    examples: int
    labels: list[str]
    latency_note: str = Field(description="What the latency figures include.")
    model: ModelResult
    baseline: ModelResult | None = None
    comparison: Comparison | None = None
    notes: list[str] = Field(default_factory=list, description="Warnings about the measurement (e.g. a split that "
                             "does not reproduce the card's accuracy).")
    gates: list[GateResult] = Field(default_factory=list)
    passed: bool = Field(description="Every gate passed (True when no gates were set).")

    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def raise_for_gates(self) -> None:
        """Raise :class:`GateFailed` naming each failed gate and by how much."""
        failed = self.failed_gates()
        if failed:
            raise GateFailed("gate failed: " + "; ".join(g.detail for g in failed))
