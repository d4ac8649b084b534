"""The 95 % interval of a pair's mean paired difference on one dataset, from the observations
its test uses: the independent splits (train seeds averaged within a split).

- Splits with test sets of their own: Student's t-interval over the splits' differences (each
  split's test sample is drawn anew, so its variance is in the spread).
- Splits sharing a test set (a source's fixed one): Student's t-interval on the standard error
  of a two-level bootstrap that resamples the splits and, within each shared test set, the
  test images (the same images for both methods and every split), so the test sample's own
  variance counts. Its percentiles would not do: over five splits a percentile interval of
  the resampled means covers about 84 % where it claims 95 % (it ignores that five splits
  estimate their spread poorly), so the standard error is taken from the resamples, scaled
  by sqrt(k / (k − 1)) for resampling k splits, and the t quantile with k − 1 degrees of
  freedom widens it as for own test sets. For the metrics computable from predicted labels
  (accuracy, balanced accuracy); other metrics get the t-interval over splits, said in `kind`.
- One split: no interval.

Either interval is the mean ± t × its standard error, so it is drawn at any level (a threshold
corrected for many tests) from the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from bench.compare.collect import DatasetScores
from bench.components.scalars import Scalar
from bench.report.statistics import balanced_accuracy_batch

LEVEL = 0.95
RESAMPLES = 2000
SEED = 0  # resamples drawn from a fixed seed: a page is reproducible
CHUNK = 200  # resamples at a time: bounds the memory on large test sets
BOOTSTRAPPED = ("accuracy", "balanced_accuracy")  # computable from predicted labels alone
T_OVER_SPLITS = "t over splits"
BOOTSTRAP = "t on a bootstrap over splits and test images"


@dataclass(frozen=True)
class Interval:
    """A mean paired difference (points) and its 95 % interval, how it was drawn, and the
    standard error and degrees of freedom of the t quantile it was drawn with."""

    mean: float
    low: float
    high: float
    kind: str
    error: float
    freedom: int

    @classmethod
    def drawn(cls, mean: float, error: float, freedom: int, kind: str) -> Interval:
        """The 95 % interval of `mean` with this standard error and degrees of freedom."""
        half = _half(LEVEL, error, freedom)
        return cls(mean, mean - half, mean + half, kind, error, freedom)

    def bounds(self, level: float = LEVEL) -> tuple[float, float]:
        """The interval at `level`: the mean ± the t quantile times its standard error."""
        half = _half(level, self.error, self.freedom)
        return self.mean - half, self.mean + half

    def text(self) -> str:
        """`[low, high]` in points."""
        return f"[{self.low:+.1f}, {self.high:+.1f}]"


def shared_interval(metric: Scalar) -> str:
    """How the interval is drawn where splits share a test set, in words, for `metric`."""
    if metric.key in BOOTSTRAPPED:
        return "Student's t on the standard error of a bootstrap over splits and test images"
    return (
        "Student's t over splits alone, which leaves out the test sample's own variance (the "
        f"runs keep predicted labels, not scores, so {metric.long} cannot be recomputed on "
        "resampled test images)"
    )


def split_differences(scores: DatasetScores, first: str, second: str) -> np.ndarray:
    """`first − second` on each split, its train seeds averaged (points)."""
    splits = scores.blocks.groupby(level="split").mean()
    return (splits[first] - splits[second]).to_numpy()


def interval(scores: DatasetScores, first: str, second: str) -> Interval | None:
    """The interval of `first − second` on `scores`' dataset (None with one split)."""
    differences = split_differences(scores, first, second)
    k = len(differences)
    if k < 2:
        return None
    if scores.shared_test_set and scores.metric in BOOTSTRAPPED and scores.predicted is not None:
        error = float(np.std(_bootstrap(scores, first, second), ddof=1)) * np.sqrt(k / (k - 1))
        kind = BOOTSTRAP
    else:
        error = float(np.std(differences, ddof=1)) / np.sqrt(k)
        kind = T_OVER_SPLITS
    return Interval.drawn(float(np.mean(differences)), error, k - 1, kind)


def _half(level: float, error: float, freedom: int) -> float:
    """Half the two-sided t-interval at `level`."""
    return float(stats.t.ppf((1 + level) / 2, freedom)) * error


def _bootstrap(scores: DatasetScores, first: str, second: str) -> np.ndarray:
    """The mean split difference over resampled splits and, per shared test set, resampled
    test images (`RESAMPLES` of them)."""
    assert scores.test_of is not None and scores.labels is not None
    rng = np.random.default_rng(SEED)
    splits = list(scores.blocks.groupby(level="split").mean().index)
    seeds = {split: sorted(t for s, t in scores.blocks.index if s == split) for split in splits}
    test_of = scores.test_of
    means = np.empty(RESAMPLES)
    for start in range(0, RESAMPLES, CHUNK):
        count = min(CHUNK, RESAMPLES - start)
        images = {
            test: rng.integers(0, len(labels), size=(count, len(labels)))
            for test, labels in sorted(scores.labels.items())
        }  # one draw of images per test set, shared by every split and method on it
        drawn = {test: scores.labels[test][index] for test, index in images.items()}
        per_split = np.stack(
            [
                np.mean(
                    [
                        _resampled(scores, split, seed, first, images[test_of[split]], drawn)
                        - _resampled(scores, split, seed, second, images[test_of[split]], drawn)
                        for seed in seeds[split]
                    ],
                    axis=0,
                )
                for split in splits
            ],
            axis=1,
        )  # resamples × splits
        chosen = rng.integers(0, len(splits), size=(count, len(splits)))
        means[start : start + count] = np.take_along_axis(per_split, chosen, axis=1).mean(axis=1)
    return means


def _resampled(
    scores: DatasetScores,
    split: str,
    seed: int,
    method: str,
    index: np.ndarray,
    drawn: dict[str, np.ndarray],
) -> np.ndarray:
    """The metric (points) of one run on each resample of its test images (`index`, whose
    labels `drawn` holds by test set, gathered once for every run on it)."""
    assert scores.predicted is not None and scores.test_of and scores.labels is not None
    test = scores.test_of[split]
    labels = scores.labels[test]
    correct = scores.predicted[(split, seed, method)] == labels
    if scores.metric == "accuracy":
        return 100 * correct[index].mean(axis=1)
    classes = int(labels.max()) + 1
    return 100 * balanced_accuracy_batch(drawn[test], correct[index], classes)
