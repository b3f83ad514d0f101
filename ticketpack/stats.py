"""The few statistics ticketpack reports beside its accuracies: standard errors and paired intervals."""

from __future__ import annotations

import math
import statistics


def binomial_se(accuracy: float, n: int | None) -> float | None:
    """Standard error of an accuracy measured on ``n`` examples: sqrt(p(1-p)/n) (None without ``n``)."""
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n) if n else None


def difference_se(a: float, b: float, n: int | None) -> float:
    """Standard error of the difference of two accuracies on ``n`` examples, treated as independent:
    sqrt(a(1-a)/n + b(1-b)/n) (0 without ``n``)."""
    return math.sqrt((a * (1 - a) + b * (1 - b)) / n) if n else 0.0


def t_interval(diffs: list[float], confidence: float = 0.95) -> tuple[float, float | None, float | None]:
    """Mean and two-sided t-interval of paired differences (no interval from one pair)."""
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return mean, None, None
    from scipy.stats import t

    half = t.ppf(0.5 + confidence / 2, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean, mean - half, mean + half
