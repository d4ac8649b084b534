"""The statistics of a comparison over datasets, from maintained libraries.

- Ranks per dataset and their mean; the Friedman test over datasets (scipy) and the Nemenyi
  post-hoc test with its critical difference (scikit-posthocs; Demšar, JMLR 7:1-30, 2006).
  Each dataset is one observation: its blocks are averaged first, never counted as datasets.
- For one pair of methods, the Bayesian signed-rank test (baycomp; Benavoli et al., JMLR
  18(77), 2017): the probabilities that the first is better, practically equivalent (within a
  region of practical equivalence, ±`rope` points) or worse. Per dataset its observations are
  the independent splits (the train seeds of a split averaged first: they share its test
  set); pooled, the per-dataset mean differences. baycomp's hierarchical test is not used:
  it needs pystan, writes its sampler's state into the working folder, and its correlation
  correction is made for cross-validation folds, not for independent splits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import baycomp
import numpy as np
import pandas as pd
import scikit_posthocs as posthocs
from scipy import stats

SAMPLES = 50_000
# Fewer paired observations than this decide nothing: with 2 or 3 of them the signed-rank
# posterior can pass 0.95 on the prior's pseudo-observation alone.
MIN_OBSERVATIONS = 5
SEED = 0  # baycomp samples its posterior: a fixed seed makes a page reproducible


def mean_ranks(scores: pd.DataFrame, higher_is_better: bool = True) -> pd.DataFrame:
    """Ranks of the methods (columns) on each dataset (rows), 1 the best, ties averaged; the
    last row, `mean rank`, averages them over the datasets."""
    ranks = scores.rank(axis=1, ascending=not higher_is_better, method="average")
    ranks.loc["mean rank"] = ranks.mean()
    return ranks


@dataclass(frozen=True)
class Friedman:
    """The Friedman test over datasets, Nemenyi's pairwise p-values and critical difference
    (None where the test cannot be made: fewer than 3 methods or 2 datasets)."""

    statistic: float | None
    p_value: float | None
    nemenyi: pd.DataFrame | None
    critical_difference: float | None


def critical_difference(methods: int, datasets: int, alpha: float = 0.05) -> float:
    """Nemenyi's critical difference of mean ranks: q_α √(k(k+1)/(6N)), q_α the studentized
    range quantile over √2 (Demšar 2006, eq. 4 and table 5)."""
    q = stats.studentized_range.ppf(1 - alpha, methods, math.inf) / math.sqrt(2)
    return float(q * math.sqrt(methods * (methods + 1) / (6 * datasets)))


def friedman(scores: pd.DataFrame) -> Friedman:
    """The tests of `scores` (datasets × methods; the same whichever direction is better)."""
    datasets, methods = scores.shape
    if methods < 3 or datasets < 2:
        return Friedman(None, None, None, None)
    result = stats.friedmanchisquare(*(scores[m].to_numpy() for m in scores.columns))
    nemenyi = posthocs.posthoc_nemenyi_friedman(scores.to_numpy())
    nemenyi.index = nemenyi.columns = scores.columns
    return Friedman(
        float(result.statistic),
        float(result.pvalue),
        nemenyi,
        critical_difference(methods, datasets),
    )


@dataclass(frozen=True)
class Posterior:
    """P(first better), P(practically equivalent), P(first worse), from `observations`
    paired observations, and the mean difference (first − second, points)."""

    better: float
    equivalent: float
    worse: float
    observations: int
    mean_difference: float

    def decision(self, level: float = 0.95) -> str:
        """`better`, `equivalent` or `worse` when its probability reaches `level` on at least
        `MIN_OBSERVATIONS` observations, else `undecided`."""
        if self.observations < MIN_OBSERVATIONS:
            return "undecided"
        for name in ("better", "equivalent", "worse"):
            if getattr(self, name) >= level:
                return name
        return "undecided"


def signed_rank(
    first: np.ndarray, second: np.ndarray, rope: float, higher_is_better: bool = True
) -> Posterior:
    """baycomp's Bayesian signed-rank test of paired scores (points), with ±`rope`; for a
    metric where lower is better, `better` is the probability that `first` is lower."""
    first, second = np.asarray(first, float), np.asarray(second, float)
    if len(first) < 2:
        raise ValueError("the signed-rank test needs at least two paired observations")
    better, equivalent, worse = baycomp.SignedRankTest.probs(
        first, second, rope=rope, nsamples=SAMPLES, random_state=SEED
    )
    if not higher_is_better:
        better, worse = worse, better
    return Posterior(
        float(better), float(equivalent), float(worse), len(first), float(np.mean(first - second))
    )
