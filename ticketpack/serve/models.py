"""The models a server holds: each validated, opened once (one ONNX Runtime session shared by all requests) and
smoke-tested before the server binds its port. Needs no web framework."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from ticketpack.core.errors import TicketpackError
from ticketpack.data.kinds import OutOfRange
from ticketpack.runtime.predictor import Predictor, softmax
from ticketpack.runtime.validate import validate_model
from ticketpack.serve.api import ModelInfo
from ticketpack.serve.config import ModelSource, ServeConfig

# A request whose inference is expected to take at most this long runs on the event loop itself: a hop to the
# inference pool and back costs tens of microseconds, more than a small model's whole run. Longer runs go to the
# pool, so that the loop keeps reading other requests while ONNX Runtime (which releases the GIL) computes.
INLINE_BUDGET_S = 0.0005
# A server process confined to one core (taskset, a container's cpuset, one worker per core) gains no parallelism
# from the pool, only the hand-off (docs/benchmarks.md, "Serving: ticket and dense under HTTP load"), so runs up to
# this long stay on the loop there; longer ones still go to the pool, which keeps health checks answering.
INLINE_BUDGET_ONE_CORE_S = 0.05


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def inline_budget_s() -> float:
    return INLINE_BUDGET_ONE_CORE_S if usable_cpus() == 1 else INLINE_BUDGET_S


@dataclass
class ServedModel:
    name: str
    predictor: Predictor
    smoke: str = "not run"
    info: ModelInfo = field(init=False)
    inline_max_rows: int = field(default=0, init=False)  # batches up to this size run inline (inline_budget_s)

    def __post_init__(self) -> None:
        p = self.predictor
        card = p.card
        self.info = ModelInfo(
            name=self.name, kind=p.kind, labels=p.labels, input=card.input,
            weights_remaining=card.sparsity.weights_remaining, architecture=card.model.name,
            provenance=card.provenance, metrics=card.metrics, export=card.export,
            weights_digest=card.weights_digest, file=p.path.name, provider=p.provider,
        )

    @property
    def kind(self) -> str:
        return self.predictor.kind

    @property
    def takes_text(self) -> bool:
        """Whether a request's inputs are strings (else nested lists of numbers)."""
        return self.predictor.card.preprocessing.takes_text

    def prepare(self, raw) -> np.ndarray:
        """Raw inputs → the graph's input tensor (raises TicketpackError on bad input)."""
        return self.prepare_checked(raw)[0]

    def prepare_checked(self, raw) -> tuple[np.ndarray, OutOfRange | None]:
        """:meth:`prepare`, and which inputs go beyond the range of the training inputs (the answer says so). A
        self-contained file's input is its raw tensor: its own graph preprocesses."""
        if self.predictor.self_contained:
            return self.predictor.raw_checked(raw)
        return self.predictor.prepare_checked(raw)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Prepared inputs (:meth:`prepare`) → logits (N, classes): a self-contained file's own graph runs its raw
        tensor."""
        if self.predictor.self_contained:
            return self.predictor.outputs_from_raw(x, ("logits",))[0]
        return self.predictor.logits_from_inputs(x)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Prepared inputs → class probabilities (N, classes), float64 rows that sum to 1."""
        return softmax(self.logits(x).astype(np.float64))

    def smoke_test(self) -> None:
        raw = self.predictor.card.preprocessing.smoke_inputs()[:1]
        probs = self.probabilities(self.prepare(raw))
        if probs.shape != (1, len(self.predictor.labels)) or not np.isfinite(probs).all():
            raise TicketpackError(f"smoke inference gave output of shape {probs.shape} with non-finite values or wrong classes")
        self.inline_max_rows = self._rows_within(inline_budget_s(), self.prepare(raw))
        self.smoke = "ok"

    def _rows_within(self, budget_s: float, one: np.ndarray) -> int:
        """How many rows one inference takes at most ``budget_s`` (0: not even one), from timed runs of 1 and 16 rows."""

        def median_run(x: np.ndarray, reps: int) -> float:
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                self.probabilities(x)
                times.append(time.perf_counter() - t)
            return sorted(times)[reps // 2]

        t1 = median_run(one, 7)
        if t1 > budget_s:
            return 0
        t16 = median_run(np.repeat(one, 16, axis=0), 5)
        per_row = max((t16 - t1) / 15, 1e-9)
        return 1 + int((budget_s - t1) / per_row)


def _validation_failure(source: ModelSource, config: ServeConfig) -> str | None:
    try:
        report = validate_model(source.path, provider=config.provider, threads=config.threads, verify=config.verify)
    except TicketpackError as exc:
        return str(exc)
    if report.passed:
        return None
    failed = [f"{c.name}: {c.detail}" for c in report.checks if not c.passed]
    return "failed validation (" + "; ".join(failed) + ")"


def load_models(config: ServeConfig, validate: bool = True) -> dict[str, ServedModel]:
    """Validate, open and smoke-test every model; if any fails, raise one error naming each failure and why."""
    served: dict[str, ServedModel] = {}
    failures: list[str] = []
    for source in config.models:
        where = f"{source.name} ({source.path})"
        if validate and (why := _validation_failure(source, config)):
            failures.append(f"{where}: {why}")
            continue
        try:
            model = ServedModel(source.name, Predictor(source.path, config.provider, config.threads))
            model.smoke_test()
        except TicketpackError as exc:
            failures.append(f"{where}: {exc}")
            continue
        served[source.name] = model
    if failures:
        raise TicketpackError(
            f"refusing to start: {len(failures)} of {len(config.models)} models cannot be served: " + " | ".join(failures)
        )
    return served
