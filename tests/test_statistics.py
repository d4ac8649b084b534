"""The comparison statistics against SciPy, scikit-learn and hand-computed values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import balanced_accuracy_score

from bench.report.statistics import (
    balanced_accuracy_batch,
    bootstrap_difference,
    compare_paired,
    paired_t_test,
    t_interval,
    wilcoxon_signed_rank,
)

TIE_FREE = np.array([0.031, -0.012, 0.054, 0.022, 0.047, 0.063, -0.005, 0.071, 0.038])


def test_paired_t_test_matches_scipy() -> None:
    reference = np.linspace(0.4, 0.6, len(TIE_FREE))
    expected = stats.ttest_rel(reference + TIE_FREE, reference)
    t, p = paired_t_test(TIE_FREE)
    assert t == pytest.approx(expected.statistic) and p == pytest.approx(expected.pvalue)


def test_wilcoxon_exact_matches_scipy_without_ties() -> None:
    expected = stats.wilcoxon(TIE_FREE, method="exact")
    statistic, p = wilcoxon_signed_rank(TIE_FREE)
    assert statistic == expected.statistic == 3  # ranks of -0.012 (2) and -0.005 (1)
    assert p == pytest.approx(expected.pvalue)


def test_wilcoxon_with_ties_counts_every_sign_pattern() -> None:
    # |d| = 1, 2, 2, 3: ranks 1, 2.5, 2.5, 4; positive sum 1 + 2.5 + 4 = 7.5, negative 2.5.
    differences = np.array([1.0, -2.0, 2.0, 3.0])
    ranks = [1.0, 2.5, 2.5, 4.0]
    sums = [
        sum(r for r, s in zip(ranks, signs, strict=True) if s)
        for signs in itertools.product((0, 1), repeat=4)
    ]
    # W+ <= 2.5 for {}, {1}, {2.5}, {2.5'}: p = 2 * 4/16.
    by_hand = 2 * sum(s <= 2.5 for s in sums) / 16
    assert wilcoxon_signed_rank(differences) == (2.5, pytest.approx(by_hand)) and by_hand == 0.5


def test_three_seeds_can_never_be_significant_by_wilcoxon() -> None:
    assert wilcoxon_signed_rank(np.array([0.01, 0.02, 0.03])) == (0.0, 0.25)
    comparison = compare_paired(
        {(0, s): 0.5 + 0.01 * s for s in range(3)}, {(0, s): 0.4 for s in range(3)}
    )
    assert comparison.too_few and comparison.wilcoxon_p_value == 0.25


def test_zero_differences_do_not_count_towards_enough_seeds() -> None:
    method = {(0, s): 0.5 + 0.01 * s for s in range(6)}
    reference = {**{(0, s): 0.4 for s in range(5)}, (0, 5): 0.55}  # seed 5: a tie
    result = compare_paired(method, reference)
    assert result.n == 6 and result.n_nonzero == 5 and result.too_few
    assert result.wilcoxon_p_value == pytest.approx(2 / 2**5)


def test_wilcoxon_normal_approximation_above_the_exact_limit() -> None:
    differences = np.random.default_rng(0).normal(0.01, 0.02, 30)
    expected = stats.wilcoxon(differences, method="approx", correction=False)
    assert wilcoxon_signed_rank(differences)[1] == pytest.approx(expected.pvalue)


def test_paired_comparison_by_hand() -> None:
    method = {(0, 0): 0.60, (0, 1): 0.64, (0, 2): 0.59, (0, 3): 0.70}
    reference = {(0, 0): 0.55, (0, 1): 0.60, (0, 2): 0.60, (0, 9): 0.10}  # seed 9 unpaired
    result = compare_paired(method, reference)
    assert result.n == 3 and result.mean_difference == pytest.approx(0.08 / 3)
    interval = stats.ttest_rel([0.60, 0.64, 0.59], [0.55, 0.60, 0.60]).confidence_interval()
    assert (result.ci_low, result.ci_high) == pytest.approx((interval.low, interval.high))
    assert all(math.isnan(v) for v in t_interval(np.array([0.1])))


def test_balanced_accuracy_batch_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(5, 60))
    predicted = np.where(rng.random((5, 60)) < 0.6, labels, rng.integers(0, 4, size=(5, 60)))
    batch = balanced_accuracy_batch(labels, predicted == labels, 4)
    assert batch == pytest.approx(
        [balanced_accuracy_score(t, p) for t, p in zip(labels, predicted, strict=True)]
    )


def test_bootstrap_interval_brackets_the_observed_difference() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 300)
    better = np.where(rng.random(300) < 0.8, labels, (labels + 1) % 3)
    worse = np.where(rng.random(300) < 0.5, labels, (labels + 1) % 3)
    observed, low, high = bootstrap_difference(labels, better, worse, 3, resamples=1000)
    exact = balanced_accuracy_score(labels, better) - balanced_accuracy_score(labels, worse)
    assert observed == pytest.approx(exact) and low < observed < high and low > 0
    same = bootstrap_difference(labels, better, better, 3, resamples=200)
    assert same == (0.0, 0.0, 0.0)
    again = bootstrap_difference(labels, better, worse, 3, resamples=1000)
    assert again == (observed, low, high)  # seeded: the same interval every time
