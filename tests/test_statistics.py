"""The statistics behind a transfer report and a study: the paired test per run, and intervals over runs that share
tickets, splits and baselines (clustered), on constructed examples whose answer is known."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from scipy.stats import t as student_t

from ticketpack.core.stats import cluster_bootstrap, excludes_zero, t_interval
from ticketpack.transfer.pooling import RESOLVED, pooled_cell
from ticketpack.transfer.report import paired_difference


def test_a_consistent_small_paired_difference_is_resolved_by_the_paired_test():
    # Three seeds: the ticket is 1 point above the other model at every seed, give or take 0.2, while the two
    # models' accuracies vary by 10 points between seeds (shared data order and split). Unpaired, the 10-point
    # spread swamps 1 point; paired, the differences are 1.0, 1.2 and 0.8 points.
    ticket = [0.80, 0.85, 0.90]
    other = [0.79, 0.838, 0.892]
    d = paired_difference(1, 0.5, "ticket", "random-mask", list(zip(ticket, other, strict=True)))
    diffs = [a - b for a, b in zip(ticket, other, strict=True)]
    half = student_t.ppf(0.975, 2) * statistics.stdev(diffs) / 3 ** 0.5
    assert d.n == 3 and d.mean == pytest.approx(0.01)
    assert (d.low, d.high) == (pytest.approx(0.01 - half), pytest.approx(0.01 + half))
    assert d.resolved  # [+0.5, +1.5] points
    _, low, high = t_interval(ticket)
    assert high - low > 0.1  # the ticket's accuracies alone span over 10 points of interval


def test_an_inconsistent_paired_difference_is_not_resolved():
    d = paired_difference(1, 0.5, "ticket", "dense", [(0.85, 0.80), (0.80, 0.84), (0.86, 0.80)])
    assert d.mean == pytest.approx(0.0233, abs=1e-4) and d.low < 0 < d.high and not d.resolved


def test_cluster_bootstrap_of_identical_values_is_that_value():
    mean, low, high = cluster_bootstrap([[0.02, 0.02], [0.02, 0.02], [0.02, 0.02]])
    assert mean == pytest.approx(0.02) and low == pytest.approx(0.02) and high == pytest.approx(0.02)


def test_clusters_that_disagree_are_not_resolved_though_the_pairs_alone_would_be():
    # Ticket seeds 0 and 1 favour the ticket by 3 points, seed 2 shows the opposite: nine pairs look convincing
    # only if they are taken as independent.
    clusters = [[0.030, 0.031, 0.029], [0.030, 0.032, 0.028], [-0.010, -0.011, -0.009]]
    flat = [x for c in clusters for x in c]
    _, naive_low, naive_high = t_interval(flat)
    assert excludes_zero(naive_low, naive_high)
    mean, low, high = cluster_bootstrap(clusters)
    assert mean == pytest.approx(statistics.fmean(flat))
    assert low < 0 < high and pooled_cell(clusters).endswith("]")  # no resolved mark
    assert low == pytest.approx(-0.010, abs=0.002) and high == pytest.approx(0.030, abs=0.002)  # the clusters' span


def test_agreeing_clusters_are_resolved_and_marked():
    clusters = [[0.030, 0.031, 0.029], [0.020, 0.022, 0.018], [0.025, 0.026, 0.024]]
    cell = pooled_cell(clusters)
    assert cell.endswith(RESOLVED) and cell.startswith("+2.5 [")


def test_cluster_bootstrap_is_deterministic_for_a_seed():
    clusters = [[0.01, -0.02, 0.03], [0.0, 0.01], [0.02, 0.02, -0.01, 0.0]]
    assert cluster_bootstrap(clusters, seed=3) == cluster_bootstrap(clusters, seed=3)


def test_cluster_bootstrap_covers_the_true_mean_where_pairs_taken_as_independent_do_not():
    # 12 clusters of 3, true mean 0, a cluster effect (sd 1) larger than the noise within a cluster (sd 0.3): the
    # situation of retrain seeds sharing a ticket and a split. Over 300 simulated studies, the 95% interval should
    # cover 0 about 95% of the time; the t-interval over the 36 values as if independent covers it far less.
    rng = np.random.default_rng(0)
    cover_cluster = cover_naive = 0
    trials = 300
    for i in range(trials):
        effects = rng.normal(0, 1.0, 12)
        clusters = [list(e + rng.normal(0, 0.3, 3)) for e in effects]
        _, low, high = cluster_bootstrap(clusters, draws=2000, seed=i)
        cover_cluster += low <= 0 <= high
        _, nlow, nhigh = t_interval([x for c in clusters for x in c])
        cover_naive += nlow <= 0 <= nhigh
    assert cover_cluster / trials >= 0.88  # percentile bootstrap with 12 clusters: a little under 95%
    assert cover_naive / trials <= 0.80
    assert cover_cluster > cover_naive


def test_no_interval_from_a_single_value():
    assert cluster_bootstrap([[0.02]]) == (0.02, None, None)
    assert pooled_cell([[0.02]]) == "+2.0"
    assert pooled_cell([[], []]) == ""
