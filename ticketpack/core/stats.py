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


def cluster_bootstrap(clusters: list[list[float]], confidence: float = 0.95, draws: int = 10_000,
                      seed: int = 0) -> tuple[float, float | None, float | None]:
    """Mean and two-stage (hierarchical) bootstrap percentile interval of values that come in clusters.

    Values in one cluster share something (a ticket, a data split, a baseline model), so they are not independent:
    each draw resamples whole clusters with replacement, then values within each drawn cluster with replacement,
    and takes the mean of what it drew (Davison & Hinkley 1997, §3.8). With few clusters the interval is as wide as
    their spread allows and no wider: three clusters resolve only large effects. Deterministic for a ``seed``.
    No interval from a single cluster of one value."""
    import numpy as np

    groups = [np.asarray(c, dtype=float) for c in clusters if len(c)]
    values = np.concatenate(groups) if groups else np.empty(0)
    if values.size == 0:
        raise ValueError("no values to summarize")
    mean = float(values.mean())
    if len(groups) < 2 and values.size < 2:
        return mean, None, None
    rng = np.random.default_rng(seed)
    sizes = np.array([len(g) for g in groups])
    width = sizes.max()
    padded = np.full((len(groups), width), np.nan)
    for i, g in enumerate(groups):
        padded[i, : len(g)] = g
    picked = rng.integers(0, len(groups), size=(draws, len(groups)))  # clusters, with replacement
    within = (rng.random((draws, len(groups), width)) * sizes[picked][..., None]).astype(int)  # values in each
    drawn = padded[picked[..., None], within]
    counts = np.broadcast_to(sizes[picked][..., None] > np.arange(width), drawn.shape)
    means = np.where(counts, drawn, 0.0).sum(axis=(1, 2)) / counts.sum(axis=(1, 2))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return mean, float(low), float(high)


def excludes_zero(low: float | None, high: float | None) -> bool:
    """Whether an interval lies wholly on one side of 0 (never, without an interval)."""
    return low is not None and high is not None and (low > 0 or high < 0)
