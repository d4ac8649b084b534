"""The 95 % interval of a pair's mean paired difference on one dataset, from the observations
its test uses: the independent splits (train seeds averaged within a split).

- Splits with test sets of their own: Student's t-interval over the splits' differences (each
  split's test sample is drawn anew, so its variance is in the spread).
- Splits sharing a test set (a source's fixed one): a two-level percentile bootstrap that
  resamples the splits and, within each shared test set, the test images (the same images for
  both methods and every split), so the test sample's own variance counts; for the metrics
  computable from predicted labels (accuracy, balanced accuracy). Other metrics get the
  t-interval, said in `kind`. At a stricter level (a threshold corrected for many tests) its
  2000 resamples are too few to place percentiles, so it is the mean ± z standard errors of
  the resampled means.
- One split: no interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from bench.compare.collect import DatasetScores
from bench.report.plots import mean_interval
from bench.report.statistics import balanced_accuracy_batch

LEVEL = 0.95
RESAMPLES = 2000
SEED = 0  # resamples drawn from a fixed seed: a page is reproducible
CHUNK = 200  # resamples at a time: bounds the memory on large test sets
BOOTSTRAPPED = ("accuracy", "balanced_accuracy")  # computable from predicted labels alone
T_OVER_SPLITS = "t over splits"
BOOTSTRAP = "bootstrap over splits and test images"


@dataclass(frozen=True)
class Interval:
    """A mean paired difference (points) and its 95 % interval, with how it was drawn and,
    for a bootstrap, the standard error of its resampled means."""

    mean: float
    low: float
    high: float
    kind: str
    error: float | None = None

    def bounds(self, level: float = LEVEL) -> tuple[float, float]:
        """The interval at `level`: as drawn at 95 %; else, for a bootstrap, the mean ± z
        standard errors (its resamples are too few for far percentiles)."""
        if level == LEVEL:
            return self.low, self.high
        if self.error is None:
            raise ValueError(f"a {self.kind} interval is drawn at {LEVEL} only, not {level}")
        z = NormalDist().inv_cdf((1 + level) / 2)
        return self.mean - z * self.error, self.mean + z * self.error

    def text(self) -> str:
        """`[low, high]` in points."""
        return f"[{self.low:+.1f}, {self.high:+.1f}]"


def split_differences(scores: DatasetScores, first: str, second: str) -> np.ndarray:
    """`first − second` on each split, its train seeds averaged (points)."""
    splits = scores.blocks.groupby(level="split").mean()
    return (splits[first] - splits[second]).to_numpy()


def interval(scores: DatasetScores, first: str, second: str) -> Interval | None:
    """The interval of `first − second` on `scores`' dataset (None with one split)."""
    differences = split_differences(scores, first, second)
    if len(differences) < 2:
        return None
    if scores.shared_test_set and scores.metric in BOOTSTRAPPED and scores.predicted is not None:
        low, high, error = _bootstrap(scores, first, second)
        return Interval(float(differences.mean()), low, high, BOOTSTRAP, error)
    mean, low, high = mean_interval(differences, LEVEL)
    return Interval(mean, low, high, T_OVER_SPLITS)


def _bootstrap(scores: DatasetScores, first: str, second: str) -> tuple[float, float, float]:
    """Percentile interval of the mean split difference over resampled splits and, per
    shared test set, resampled test images, and the standard error of the resampled means."""
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
    low, high = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(low), float(high), float(means.std(ddof=1))


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
