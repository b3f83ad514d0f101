"""Latency measurement with an adaptive run count, interleaving several models so they share the machine's noise.

After warm-up, the number of calls per timed run grows (1, 2, 5, 10, 20, 50, ...: ``timeit.Timer.autorange``) until
one run of every model takes at least ``min_timing_s``: a call of a few microseconds is then timed in groups, so the
clock's resolution and the timing's own overhead do not dominate it and its figures settle within the time budget;
a call that long already is timed alone. Every model runs once per round (A, B, A, B, ...), each run timed with
``perf_counter_ns`` and recorded as its mean time per call. Rounds continue until the ~95% confidence interval of
every model's median (from order statistics, no distribution assumed) is within ``target_ci_pct`` of the median,
with at least ``min_runs`` runs and ``min_seconds`` spent, or until ``max_seconds``/``max_runs`` is reached (then
``stable`` is False).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ticketpack.evaluate.report import LatencyStats


@dataclass(frozen=True)
class LatencyBudget:
    warmup_runs: int = 3
    warmup_seconds: float = 0.05
    min_runs: int = 20
    max_runs: int = 20_000  # timed runs, each of calls_per_run calls
    min_seconds: float = 0.2
    max_seconds: float = 2.0
    target_ci_pct: float = 1.0
    min_timing_s: float = 1e-4  # a timed run covers enough calls to last this long (autorange)
    max_calls_per_run: int = 1_000_000


def median_ci_pct(samples: Sequence[float]) -> float:
    """Half-width of the distribution-free ~95% interval of the median, as % of the median."""
    s = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(s)
    if n < 3:
        return math.inf
    k = 1.96 * math.sqrt(n) / 2
    lo = s[max(0, math.floor(n / 2 - k))]
    hi = s[min(n - 1, math.ceil(n / 2 + k))]
    med = float(np.median(s))
    return 100.0 * (hi - lo) / 2 / med if med > 0 else math.inf


def _stats(batch_size: int, ns: list[float], warmup: int, calls: int, stable: bool) -> LatencyStats:
    ms = np.asarray(ns, dtype=np.float64) / 1e6  # mean time per call of each timed run
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencyStats(
        batch_size=batch_size, runs=len(ms), calls_per_run=calls, warmup_runs=warmup,
        p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99), mean_ms=float(ms.mean()),
        throughput_per_s=float(batch_size * len(ms) / (ms.sum() / 1e3)),
        median_ci_pct=float(median_ci_pct(ms)), stable=stable,
    )


def _timed(run: Callable[[], object], calls: int, clock: Callable[[], int] = time.perf_counter_ns) -> int:
    """Nanoseconds that ``calls`` calls of ``run`` take, in one timing."""
    repeat = itertools.repeat(None, calls)
    t0 = clock()
    for _ in repeat:
        run()
    return clock() - t0


def calls_per_run(runners: Sequence[Callable[[], object]], budget: LatencyBudget,
                  clock: Callable[[], int] = time.perf_counter_ns) -> tuple[int, int]:
    """``timeit``'s autorange over several runners: the smallest count in 1, 2, 5, 10, 20, 50, ... whose timing of every
    runner lasts ``budget.min_timing_s``; with the calls it took (all runners), which count as warm-up."""
    floor_ns = budget.min_timing_s * 1e9
    spent = 0
    for exp in itertools.count():
        for step in (1, 2, 5):
            calls = step * 10**exp
            if calls >= budget.max_calls_per_run:
                return budget.max_calls_per_run, spent
            shortest = min(_timed(run, calls, clock) for run in runners)
            spent += calls
            if shortest >= floor_ns:
                return calls, spent
    raise AssertionError("unreachable")


def measure_interleaved(
    runners: Sequence[Callable[[], object]], batch_size: int, budget: LatencyBudget = LatencyBudget()
) -> list[LatencyStats]:
    """Time each runner (one call = one batch) in alternation, in runs of the same number of calls for all (see
    :func:`calls_per_run`); one LatencyStats per runner."""
    clock = time.perf_counter_ns
    warm = [0] * len(runners)
    last = [0] * len(runners)  # each runner's last warm-up call, in ns
    t_end = time.perf_counter() + budget.warmup_seconds
    while min(warm) < budget.warmup_runs or time.perf_counter() < t_end:
        for i, run in enumerate(runners):
            last[i] = _timed(run, 1, clock)
            warm[i] += 1
        if min(warm) >= 10 * budget.warmup_runs:  # slow models: do not let the warm-up time floor dominate
            break
    calls = 1
    if min(last) < budget.min_timing_s * 1e9:  # short calls: find how many make a run long enough
        calls, spent = calls_per_run(runners, budget, clock)
        warm = [w + spent for w in warm]
    samples: list[list[float]] = [[] for _ in runners]
    start = time.perf_counter()
    stable = False
    next_check = budget.min_runs
    while True:
        for i, run in enumerate(runners):
            samples[i].append(_timed(run, calls, clock) / calls)
        n = len(samples[0])
        elapsed = time.perf_counter() - start
        if n >= next_check and elapsed >= budget.min_seconds:
            next_check = n + max(5, n // 5)
            if all(median_ci_pct(s) <= budget.target_ci_pct for s in samples):
                stable = True
                break
        if n >= budget.max_runs or elapsed >= budget.max_seconds:
            break
    return [_stats(batch_size, s, w, calls, stable) for s, w in zip(samples, warm)]
