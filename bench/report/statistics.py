"""Statistics for comparing methods: paired tests over seeds, bootstrap over test images.

Seeds pair naturally (same split, same initialisation seed), so differences are taken per
shared seed. The Wilcoxon signed-rank test is exact (all 2^n sign patterns) for the handful of
seeds a benchmark affords; the t-test and interval use Student's t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

# Below this many pairs the exact two-sided Wilcoxon p-value cannot reach 0.05 (2 / 2^5).
MIN_PAIRS = 6
EXACT_LIMIT = 16


@dataclass(frozen=True)
class PairedComparison:
    """Method minus reference over `n` shared seeds (`n_nonzero` of them with a non-zero
    difference): mean difference, its 95% t-interval, the paired t-test and the exact Wilcoxon
    signed-rank test (two-sided p-values)."""

    n: int
    n_nonzero: int
    mean_difference: float
    ci_low: float
    ci_high: float
    t_p_value: float
    wilcoxon_p_value: float

    @property
    def too_few(self) -> bool:
        """Whether there are too few non-zero pairs (the ones Wilcoxon ranks) for the test to
        ever reject at 5%."""
        return self.n_nonzero < MIN_PAIRS


def paired_t_test(differences: np.ndarray) -> tuple[float, float]:
    """Paired t statistic and two-sided p-value of mean(differences) = 0 (nan below 2 pairs;
    a zero spread gives p = 0 when the mean is not zero, 1 when it is)."""
    n = len(differences)
    if n < 2:
        return math.nan, math.nan
    mean, sd = float(np.mean(differences)), float(np.std(differences, ddof=1))
    if sd == 0:
        return (math.copysign(math.inf, mean), 0.0) if mean else (math.nan, 1.0)
    t = mean / (sd / math.sqrt(n))
    return t, float(2 * stats.t.sf(abs(t), n - 1))


def wilcoxon_signed_rank(differences: np.ndarray) -> tuple[float, float]:
    """Wilcoxon signed-rank test: the smaller of the positive and negative rank sums and its
    two-sided p-value. Zero differences are dropped and tied magnitudes share their average
    rank. Exact (all 2^n sign patterns) up to EXACT_LIMIT pairs, normal approximation with tie
    correction above."""
    nonzero = differences[differences != 0]
    n = len(nonzero)
    if n == 0:
        return 0.0, 1.0
    ranks = stats.rankdata(np.abs(nonzero))
    positive = float(ranks[nonzero > 0].sum())
    statistic = min(positive, float(ranks.sum()) - positive)
    if n <= EXACT_LIMIT:
        signs = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        null = signs @ ranks  # the positive rank sum under every sign pattern
        return statistic, float(min(1.0, 2 * np.mean(null <= statistic + 1e-9)))
    _, tie_counts = np.unique(ranks, return_counts=True)
    variance = n * (n + 1) * (2 * n + 1) / 24 - np.sum(tie_counts**3 - tie_counts) / 48
    z = (statistic - n * (n + 1) / 4) / math.sqrt(variance)
    return statistic, float(min(1.0, 2 * stats.norm.cdf(z)))


def t_interval(differences: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean difference (nan below 2 pairs)."""
    n = len(differences)
    if n < 2:
        return math.nan, math.nan
    mean = float(np.mean(differences))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * np.std(differences, ddof=1) / math.sqrt(n)
    return mean - float(half), mean + float(half)


def compare_paired(
    method: dict[tuple[int, int], float], reference: dict[tuple[int, int], float]
) -> PairedComparison:
    """Compare per-seed scores, keyed by (data seed, train seed), of a method with a
    reference's over their shared seeds."""
    seeds = sorted(set(method) & set(reference))
    differences = np.array([method[s] - reference[s] for s in seeds], dtype=float)
    low, high = t_interval(differences)
    return PairedComparison(
        n=len(seeds),
        n_nonzero=int(np.count_nonzero(differences)),
        mean_difference=float(differences.mean()) if len(seeds) else math.nan,
        ci_low=low,
        ci_high=high,
        t_p_value=paired_t_test(differences)[1],
        wilcoxon_p_value=wilcoxon_signed_rank(differences)[1] if len(seeds) else math.nan,
    )


def balanced_accuracy_batch(
    labels: np.ndarray, correct: np.ndarray, num_classes: int
) -> np.ndarray:
    """Balanced accuracy of each row of a B×N resample (labels and correctness per image);
    classes absent from a resample are left out of its mean, as scikit-learn does."""
    rows = np.repeat(np.arange(labels.shape[0]), labels.shape[1])
    flat = rows * num_classes + labels.reshape(-1)
    size = labels.shape[0] * num_classes
    hits = np.bincount(flat, weights=correct.reshape(-1), minlength=size)
    counts = np.bincount(flat, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = (hits / counts).reshape(labels.shape[0], num_classes)
    return np.nanmean(recall, axis=1)


def bootstrap_difference(
    labels: np.ndarray,
    predicted: np.ndarray,
    reference: np.ndarray,
    num_classes: int,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Balanced-accuracy difference (method minus reference) on one test set, with a paired
    percentile-bootstrap interval over test images (the same resampled images for both)."""
    rng = np.random.default_rng(seed)
    observed = balanced_accuracy_batch(
        labels[None], (predicted == labels)[None], num_classes
    ) - balanced_accuracy_batch(labels[None], (reference == labels)[None], num_classes)
    differences = np.empty(resamples)
    for start in range(0, resamples, 250):  # 250 resamples at a time bounds the memory
        stop = min(start + 250, resamples)
        index = rng.integers(0, len(labels), size=(stop - start, len(labels)))
        sample = labels[index]
        differences[start:stop] = balanced_accuracy_batch(
            sample, predicted[index] == sample, num_classes
        ) - balanced_accuracy_batch(sample, reference[index] == sample, num_classes)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return float(observed[0]), float(low), float(high)
