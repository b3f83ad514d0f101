"""The speed check at the end of an export: the file's graph against the unpruned dense float graph of the same model,
timed on the export machine, so that a format or a quantization that makes the model slower says so.

Both graphs run in one process through ONNX Runtime (CPU, the export's ``threads``, idle pool threads not
spinning), interleaved in pairs, one batch size after the other: after a few warm-up calls, each round times a short
sample (``SAMPLE_S``, the same number of calls) of each graph back to back, in alternating order, and takes the
pair's ratio this file / dense; a batch size's ratio is the median over its rounds, so that a burst of other load on
the machine spoils a few pairs and not the result. Batch sizes: 1 and ``min(LARGE_BATCH, test examples)``, each
given half of ``BUDGET_S`` (``MIN_ROUNDS`` at least, ``MAX_ROUNDS`` at most); sessions and warm-up come on top. A
ratio above ``MARGIN`` is measured once more (as long again) and the lower of the two medians kept, so that a burst
of load during one window does not make a warning (measured: the dense graph timed against itself read up to 1.15×
in 1 of 24 windows with ONNX Runtime's default threads on a 2-core machine under a load average of 5).
A ratio above ``MARGIN`` at either batch is reported as a :class:`SlowerThanDense` event.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort

from ticketpack.core.errors import TicketpackError
from ticketpack.core.events import Event
from ticketpack.runtime.card import SpeedVsDense
from ticketpack.runtime.session import make_session

BUDGET_S = 1.0  # seconds of timed rounds (session creation and the warm-up calls come on top)
LARGE_BATCH = 64
MARGIN = 1.10  # a ratio above this at either batch is reported; below it is within run-to-run noise
SAMPLE_S = 0.002  # seconds of calls per graph in one timed sample: short, so that a burst of other load spoils few
MIN_ROUNDS, MAX_ROUNDS = 5, 2000
MAX_CALLS = 1000  # per graph, batch and round
WARM_UP_CALLS = 3


@dataclass
class SlowerThanDense(Event):
    """Export's warning that the written file ran slower than the unpruned dense float graph at one batch size."""

    batch: int = field(default=1, kw_only=True)
    ratio: float = field(default=1.0, kw_only=True)  # this file's median time per call / the dense graph's
    threads: int | None = field(default=None, kw_only=True)  # None: ONNX Runtime's default


def _timed(which: str, run: Callable[[], object], calls: int) -> float:
    """Seconds for ``calls`` calls of ``run`` (``which``: "file" or "dense", for tests that fake the clock)."""
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return time.perf_counter() - start


def batch_sizes(examples: int) -> list[int]:
    """1 and ``min(LARGE_BATCH, examples)``, once each."""
    return sorted({1, max(1, min(LARGE_BATCH, examples))})


def _session(graph: bytes, threads: int | None) -> ort.InferenceSession:
    """A CPU session as export's checks make it, less the spinning of idle pool threads: a pool left spinning after
    one graph's call takes the CPU from the other graph's next call (measured: the same graph timed against itself
    read 0.1× to 10× with ONNX Runtime's default threads on a busy 2-core machine)."""
    try:
        return make_session(graph, "cpu", threads, spin=False)[0]
    except TicketpackError as exc:  # the export's checks loaded it already: this failure is ORT's own
        raise TicketpackError(f"speed check: {exc}; export with `speed_check` false") from None


def measure(file_graph: bytes, dense_graph: bytes, x: np.ndarray, threads: int | None,
            budget: float | None = None) -> SpeedVsDense:
    """Time a serialized graph against the serialized dense float graph on the first rows of ``x`` (see the module
    docstring); both take ``input`` and answer ``logits``."""
    budget = BUDGET_S if budget is None else budget
    sessions = {"file": _session(file_graph, threads), "dense": _session(dense_graph, threads)}
    ratios, rounds = {}, []
    batches = batch_sizes(len(x))
    for b in batches:  # one batch size after the other: a session whose input shape changes re-plans its memory
        feed = {"input": np.ascontiguousarray(x[:b])}
        runs = {which: (lambda s=session, f=feed: s.run(["logits"], f)) for which, session in sessions.items()}
        for run in runs.values():  # warm-up: the first calls of a session at a shape allocate its buffers
            _timed("warm-up", run, WARM_UP_CALLS)
        cost = max(_timed("file", runs["file"], 1) + _timed("dense", runs["dense"], 1), 1e-7)
        calls = int(min(MAX_CALLS, max(1, 2 * SAMPLE_S / cost)))
        ratio, n = _median_ratio(runs, calls, budget / len(batches))
        if ratio > MARGIN:  # measured again, and the lower median kept: a burst of load must not make a warning
            again, more = _median_ratio(runs, calls, budget / len(batches))
            ratio, n = min(ratio, again), n + more
        ratios[b] = round(ratio, 3)
        rounds.append(n)
    return SpeedVsDense(ratios=ratios, threads=threads, cpus=os.cpu_count(), rounds=min(rounds),
                        onnxruntime=ort.__version__)


def _median_ratio(runs: dict[str, Callable[[], object]], calls: int, seconds: float) -> tuple[float, int]:
    """The median over rounds of (file / dense) for ``calls`` calls of each, back to back in alternating order, for
    ``seconds`` (MIN_ROUNDS at least, MAX_ROUNDS at most); and the rounds."""
    pairs: list[float] = []
    start = time.perf_counter()
    while len(pairs) < MAX_ROUNDS and (len(pairs) < MIN_ROUNDS or time.perf_counter() - start < seconds):
        order = ("file", "dense") if len(pairs) % 2 == 0 else ("dense", "file")
        spent = {which: _timed(which, runs[which], calls) for which in order}
        pairs.append(spent["file"] / max(spent["dense"], 1e-12))
    return statistics.median(pairs), len(pairs)


def slower(speed: SpeedVsDense, format: str, quantize: str) -> list[SlowerThanDense]:
    """One warning per batch size at which the file ran more than ``MARGIN`` × the dense graph's time."""
    threads = f"{speed.threads} thread{'s' * (speed.threads != 1)}" if speed.threads else \
        f"ONNX Runtime's default threads ({speed.cpus} CPUs)"
    what = format + ("" if quantize == "none" else f", {quantize}")
    instead = ("--quantize none (the float file)" if quantize != "none"
               else "--format compact" if format == "sparse" else "--format dense")
    return [SlowerThanDense(
        "slower_than_dense", stage="export", batch=b, ratio=r, threads=speed.threads,
        message=f"this file ({what}) ran {r:.2f}× the time of the unpruned dense float graph at batch {b} on this "
                f"machine (ONNX Runtime CPU, {threads}; the lower of two medians of interleaved runs); for speed on "
                f"this machine try {instead}",
    ) for b, r in sorted(speed.ratios.items()) if r > MARGIN]


def check_speed(graph: bytes, dense: bytes, x: np.ndarray, threads: int | None, format: str, quantize: str,
                on_event: Callable[[Event], None]) -> tuple[SpeedVsDense, str | None]:
    """Measure, send a :class:`SlowerThanDense` event per slow batch size, and return the measurement and the
    warnings' messages as one line (None when the file is not slower)."""
    speed = measure(graph, dense, x, threads)
    warnings = slower(speed, format, quantize)
    for warning in warnings:
        on_event(warning)
    return speed, "; ".join(w.message for w in warnings) or None
