"""Pooling transfer runs: a study's tables over several tickets (one run per ticket seed, or per source domain).

Runs pooled together are not independent: the runs of one ticket seed share that seed's data splits, its tickets
(one per source domain, transferred to every target) and the baselines trained on a target (``dense``,
``target-ticket``: the same models, by seed, whichever source the ticket came from). So the per-seed differences
are kept in clusters, one per ticket seed, and summarized by a two-stage cluster bootstrap
(:func:`ticketpack.core.stats.cluster_bootstrap`), never as if every (ticket seed, retrain seed) pair were independent.
``examples/desai2019`` and ``examples/mnist_digits`` build their summaries from these; ``docs/results.md`` says how
to read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ticketpack.core.stats import cluster_bootstrap, excludes_zero
from ticketpack.transfer.records import JobResult, TransferReport

RESOLVED = " *"  # the plain-text mark of a resolved difference, in every rendering (with a legend)


@dataclass
class LevelPool:
    """The ``position``-th level of several runs: what every table of a study reads."""

    weights: list[float] = field(default_factory=list)  # the reference's weights remaining, per (run, seed)
    accuracies: dict[str, list[float]] = field(default_factory=dict)  # per strategy, over every (run, seed)
    differences: dict[str, list[list[float]]] = field(default_factory=dict)  # reference − other, one list per run


class SeedAccuracies:
    """Target test accuracy of each (level, strategy, seed) of one run's results: what a run's report and a study's
    tables pair. A strategy trained without a mask (``dense``) has one model per seed, at level 0, which every level
    compares with."""

    def __init__(self, results: list[JobResult]) -> None:
        self._by = {(r.level, r.init, r.seed): r for r in results}
        self._unmasked: dict[str, dict[int, float]] = {}
        for r in results:
            if r.mask_sha256 is None:
                self._unmasked.setdefault(r.init, {})[r.seed] = r.target_test_accuracy

    def result(self, level: int, init: str, seed: int) -> JobResult | None:
        """The job of a masked strategy at ``level`` and ``seed``, if it finished."""
        return self._by.get((level, init, seed))

    def __call__(self, level: int, init: str, seed: int) -> float | None:
        if init in self._unmasked:
            return self._unmasked[init].get(seed)
        found = self._by.get((level, init, seed))
        return found.target_test_accuracy if found is not None else None


def pool_level(runs: list[TransferReport], position: int, inits: list[str], reference: str = "ticket") -> LevelPool:
    """Every strategy's accuracies at the ``position``-th level of each run, and ``reference − other`` per retrain
    seed, one cluster per run."""
    pool = LevelPool(accuracies={i: [] for i in inits},
                     differences={i: [] for i in inits if i != reference})
    for run in runs:
        level = run.levels[position]
        accuracy = SeedAccuracies(run.results)
        cluster: dict[str, list[float]] = {o: [] for o in pool.differences}
        for seed in run.seeds:
            for init in inits:
                if (acc := accuracy(level, init, seed)) is not None:
                    pool.accuracies[init].append(acc)
            ref = accuracy.result(level, reference, seed)
            if ref is None:
                continue
            pool.weights.append(ref.weights_remaining)
            for other, diffs in cluster.items():
                if (acc := accuracy(level, other, seed)) is not None:
                    diffs.append(ref.target_test_accuracy - acc)
        for other, diffs in cluster.items():
            pool.differences[other].append(diffs)
    return pool


def pooled_cell(clusters: list[list[float]], seed: int = 0) -> str:
    """A table cell for a difference pooled over clusters of per-seed differences (accuracy, 0-1): ``+1.2 [-0.8,
    +3.1] *``, the mean and the two-stage cluster bootstrap 95% interval in points, marked when the interval excludes
    0; empty without values."""
    if not any(clusters):
        return ""
    mean, low, high = cluster_bootstrap(clusters, seed=seed)
    text = f"{100 * mean:+.1f}" if low is None else f"{100 * mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"
    return text + (RESOLVED if excludes_zero(low, high) else "")
