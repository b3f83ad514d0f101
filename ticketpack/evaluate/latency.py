"""Latency measurement with an adaptive run count, interleaving several models so they share the machine's noise.

After warm-up, every model runs once per round (A, B, A, B, ...), each run timed with ``perf_counter_ns``.
Rounds continue until the ~95% confidence interval of every model's median (from order statistics, no
distribution assumed) is within ``target_ci_pct`` of the median, with at least ``min_runs`` runs and
``min_seconds`` spent, or until ``max_seconds``/``max_runs`` is reached (then ``stable`` is False).
"""

from __future__ import annotations

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
    max_runs: int = 20_000
    min_seconds: float = 0.2
    max_seconds: float = 2.0
    target_ci_pct: float = 1.0


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


def _stats(batch_size: int, ns: list[int], warmup: int, stable: bool) -> LatencyStats:
    ms = np.asarray(ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencyStats(
        batch_size=batch_size, runs=len(ms), warmup_runs=warmup,
        p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99), mean_ms=float(ms.mean()),
        throughput_per_s=float(batch_size * len(ms) / (ms.sum() / 1e3)),
        median_ci_pct=float(median_ci_pct(ms)), stable=stable,
    )


def measure_interleaved(
    runners: Sequence[Callable[[], object]], batch_size: int, budget: LatencyBudget = LatencyBudget()
) -> list[LatencyStats]:
    """Time each runner (one call = one batch) in alternation; one LatencyStats per runner."""
    clock = time.perf_counter_ns
    warm = [0] * len(runners)
    t_end = time.perf_counter() + budget.warmup_seconds
    while min(warm) < budget.warmup_runs or time.perf_counter() < t_end:
        for i, run in enumerate(runners):
            run()
            warm[i] += 1
        if min(warm) >= 10 * budget.warmup_runs:  # slow models: do not let the warm-up time floor dominate
            break
    samples: list[list[int]] = [[] for _ in runners]
    start = time.perf_counter()
    stable = False
    next_check = budget.min_runs
    while True:
        for i, run in enumerate(runners):
            t0 = clock()
            run()
            samples[i].append(clock() - t0)
        n = len(samples[0])
        elapsed = time.perf_counter() - start
        if n >= next_check and elapsed >= budget.min_seconds:
            next_check = n + max(5, n // 5)
            if all(median_ci_pct(s) <= budget.target_ci_pct for s in samples):
                stable = True
                break
        if n >= budget.max_runs or elapsed >= budget.max_seconds:
            break
    return [_stats(batch_size, s, w, stable) for s, w in zip(samples, warm)]
