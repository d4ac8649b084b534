"""The uncertainty `bench compare` states: intervals drawn from the observations the tests use
(a t-interval over splits with their own test sets, a bootstrap over splits and test images
where they share one, checked against a slow reference), decisions that need the bootstrap to
agree, the count of tests and what survives correcting for it, and pooling over real datasets
only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import balanced_accuracy_score

from bench.compare import intervals
from bench.compare.build import analyse, decide, tables, verdict
from bench.compare.collect import DatasetScores
from bench.compare.intervals import BOOTSTRAP, T_OVER_SPLITS, Interval, interval
from bench.compare.stats import Posterior
from bench.recipes.methods import MethodRegistry

METHODS = ("ce+crt", "supcon+crt")


def _shared(splits: int = 4, seeds: int = 2, n: int = 60, gain: float = 0.1) -> DatasetScores:
    """`splits` splits × `seeds` train seeds over ONE test set of `n` images (3 classes);
    supcon+crt right on a `gain` share more images than ce+crt. Scores from the predictions."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, n)
    predicted, rows = {}, []
    for split in range(splits):
        for seed in range(seeds):
            for method, p_right in zip(METHODS, (0.6, 0.6 + gain), strict=True):
                right = rng.random(n) < p_right
                guess = np.where(right, labels, (labels + 1 + rng.integers(0, 2, n)) % 3)
                predicted[(f"s{split}", seed, method)] = guess
                score = 100 * balanced_accuracy_score(labels, guess)
                rows.append((f"s{split}", seed, method, score))
    table = pd.DataFrame(rows, columns=["split", "train_seed", "method", "score"])
    blocks = table.pivot_table(index=["split", "train_seed"], columns="method", values="score")
    test_of = {f"s{split}": "t0" for split in range(splits)}
    return DatasetScores(
        "shared", blocks[list(METHODS)], 1, predicted=predicted, test_of=test_of,
        labels={"t0": labels},
    )  # fmt: skip


def _slow_bootstrap(scores: DatasetScores, first: str, second: str) -> np.ndarray:
    """The two-level bootstrap written plainly, one resample and one run at a time, with
    scikit-learn's balanced accuracy and the same random draws as the fast one."""
    assert scores.labels is not None and scores.predicted is not None
    rng = np.random.default_rng(intervals.SEED)
    splits = sorted({s for s, _ in scores.blocks.index})
    labels = scores.labels["t0"]
    means = []
    for start in range(0, intervals.RESAMPLES, intervals.CHUNK):
        count = min(intervals.CHUNK, intervals.RESAMPLES - start)
        images = rng.integers(0, len(labels), size=(count, len(labels)))
        chosen = rng.integers(0, len(splits), size=(count, len(splits)))
        for b in range(count):
            differences = []
            for split in splits:
                seeds = sorted(t for s, t in scores.blocks.index if s == split)
                per_seed = [
                    100 * balanced_accuracy_score(
                        labels[images[b]], scores.predicted[(split, seed, first)][images[b]]
                    ) - 100 * balanced_accuracy_score(
                        labels[images[b]], scores.predicted[(split, seed, second)][images[b]]
                    )
                    for seed in seeds
                ]  # fmt: skip
                differences.append(np.mean(per_seed))
            means.append(np.mean([differences[k] for k in chosen[b]]))
    return np.array(means)


@pytest.mark.slow
def test_the_bootstrap_over_splits_and_test_images_matches_a_slow_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(intervals, "RESAMPLES", 300)
    monkeypatch.setattr(intervals, "CHUNK", 120)  # chunks that do not divide it evenly
    scores = _shared()
    found = interval(scores, "supcon+crt", "ce+crt")
    assert found is not None and found.kind == BOOTSTRAP
    means = _slow_bootstrap(scores, "supcon+crt", "ce+crt")
    differences = scores.blocks.groupby(level="split").mean()
    mean = (differences["supcon+crt"] - differences["ce+crt"]).mean()
    k = len(differences)  # the standard error of k resampled splits, corrected to k - 1
    error = means.std(ddof=1) * np.sqrt(k / (k - 1))
    half = stats.t.ppf(0.975, k - 1) * error
    assert (found.mean, found.error, found.freedom) == (
        pytest.approx(mean),
        pytest.approx(error),
        k - 1,
    )
    assert (found.low, found.high) == (pytest.approx(mean - half), pytest.approx(mean + half))


def test_the_bootstrap_interval_holds_its_mean_and_is_zero_against_itself() -> None:
    scores = _shared(splits=5, seeds=1, n=80)
    boot = interval(scores, "supcon+crt", "ce+crt")
    own = interval(
        DatasetScores("own", scores.blocks, test_sets=5), "supcon+crt", "ce+crt"
    )  # the same numbers, as if each split had its test set
    assert boot is not None and own is not None and own.kind == T_OVER_SPLITS
    assert boot.low <= boot.mean <= boot.high and boot.freedom == own.freedom == 4
    # The test images' variance comes on top of the splits': wider than over splits alone.
    assert boot.error > own.error
    same = interval(scores, "ce+crt", "ce+crt")
    assert same is not None and (same.low, same.high) == (0.0, 0.0)  # nothing to resample


def test_splits_with_their_own_test_sets_get_students_t_and_one_split_none() -> None:
    index = pd.MultiIndex.from_product([range(5), range(2)], names=["split", "train_seed"])
    ce = np.arange(10.0)
    gain = np.array([1.0, 1.0, 2.0, 2.0, 0.0, 0.0, 3.0, 3.0, 4.0, 2.0])
    blocks = pd.DataFrame({"ce+crt": ce, "supcon+crt": ce + gain}, index=index)
    found = interval(DatasetScores("d", blocks, test_sets=5), "supcon+crt", "ce+crt")
    per_split = np.array([1.0, 2.0, 0.0, 3.0, 3.0])  # the train seeds of a split averaged
    half = stats.t.ppf(0.975, 4) * per_split.std(ddof=1) / np.sqrt(5)
    assert found == Interval(
        pytest.approx(1.8),
        pytest.approx(1.8 - half),
        pytest.approx(1.8 + half),
        T_OVER_SPLITS,
        pytest.approx(per_split.std(ddof=1) / np.sqrt(5)),
        4,
    )
    one = DatasetScores("d", blocks.loc[[0]], test_sets=1)
    assert interval(one, "supcon+crt", "ce+crt") is None


def _spread(mean: float, low: float, high: float, kind: str = BOOTSTRAP) -> Interval:
    """An interval over five splits spanning [low, high] at 95 % (symmetric about `mean`)."""
    return Interval(mean, low, high, kind, (high - low) / 2 / stats.t.ppf(0.975, 4), 4)


def test_a_decision_on_a_shared_test_set_stands_only_where_the_bootstrap_agrees() -> None:
    better = Posterior(0.97, 0.02, 0.01, 5, 2.0)
    equivalent = Posterior(0.01, 0.98, 0.01, 5, 0.1)
    assert decide(better, _spread(2.0, 0.5, 3.5), rope=1.0) == "better"
    assert decide(better, _spread(1.5, -0.5, 3.5), rope=1.0) == "undecided"
    assert decide(better, _spread(1.5, -0.5, 3.5, T_OVER_SPLITS), rope=1.0) == "better"
    assert decide(equivalent, _spread(0.05, -0.8, 0.9), rope=1.0) == "equivalent"
    assert decide(equivalent, _spread(-0.3, -1.5, 0.9), rope=1.0) == "undecided"
    # Lower is better (ECE): an interval below zero agrees with `better`.
    assert decide(better, _spread(-2.0, -3.5, -0.5), 1.0, False) == "better"
    assert decide(better, _spread(2.0, 0.5, 3.5), 1.0, False) == "undecided"


def test_at_a_corrected_threshold_the_bootstrap_must_agree_at_that_level() -> None:
    sure = Posterior(0.9999, 0.0001, 0.0, 5, 2.0)
    spread = Interval(2.0, 0.61, 3.39, BOOTSTRAP, error=0.5, freedom=4)  # 95 %: t = 2.78
    assert spread.bounds() == pytest.approx((0.6118, 3.3882), abs=1e-4)
    low, high = spread.bounds(0.9992)  # t(4) at 0.9996 is 9.13: 2 ± 4.56
    assert (low, high) == (pytest.approx(2.0 - 4.5629, abs=1e-3), pytest.approx(6.5629, abs=1e-3))
    assert decide(sure, spread, rope=1.0, level=0.95) == "better"
    assert decide(sure, spread, rope=1.0, level=0.9992) == "undecided"  # the bound crosses 0
    narrow = Interval(2.0, 1.72, 2.28, BOOTSTRAP, error=0.1, freedom=4)
    assert decide(sure, narrow, rope=1.0, level=0.9992) == "better"


def _blocks(gain: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_product([range(5), range(1)], names=["split", "train_seed"])
    base = 60 + rng.normal(0, 2, len(index))
    return pd.DataFrame(
        {"ce": base - 5, "ce+crt": base, "supcon+crt": base + gain + rng.normal(0, 0.1, 5)},
        index=index,
    )


def test_pooled_analyses_leave_out_datasets_reported_apart_and_count_the_tests() -> None:
    real = [DatasetScores(n, _blocks(3.0, k), test_sets=5) for k, n in enumerate("abc")]
    synthetic = DatasetScores("synthetic", _blocks(-20.0, 9), test_sets=5, pooled=False)
    comparison = analyse([*real, synthetic], MethodRegistry(), rope=1.0)
    assert comparison.pooled == ("a", "b", "c") and comparison.apart == ["synthetic"]
    [pair] = comparison.pairs
    assert pair.pooled is not None and pair.pooled.observations == 3
    assert pair.pooled.mean_difference == pytest.approx(
        np.mean([comparison.means.loc[d, "supcon+crt"] - comparison.means.loc[d, "ce+crt"]
                 for d in "abc"])
    )  # fmt: skip
    # The mean rank is over the pooled datasets; synthetic's own ranks are still shown.
    assert comparison.ranks.loc["mean rank", "supcon+crt"] == 1.0
    assert comparison.ranks.loc["synthetic", "supcon+crt"] == 3.0
    assert comparison.tests() == 4  # four datasets; the pooled test (3 datasets) cannot decide
    text = verdict(comparison)
    assert "synthetic (generated, or marked so in the study) is tested on its own" in text
    assert "Pooled over the 3 per-dataset mean differences (a, b, c)" in text
    assert "The page makes 4 tests" in text and "1 − 0.05/4 = 0.9875" in text
    assert "Worse than it: supcon+crt on synthetic (-20.0 points [" in text
    (rank_table, pair_table) = tables(comparison)
    assert "the mean rank is over a, b, c (synthetic reported apart)" in rank_table.caption
    assert pair_table.rows[0][3].startswith("+3.0 [+")  # the interval beside the mean
    assert set(pair_table.numbers.columns) >= {"ci_low", "ci_high", "interval", "decision"}


def test_a_metric_without_a_test_image_bootstrap_says_its_interval_counts_less() -> None:
    # Splits sharing one test set, compared on AUROC: the runs keep predicted labels only, so
    # the interval is over splits alone, and the page says what that leaves out.
    shared = DatasetScores("a", _blocks(3.0, 0), test_sets=1, metric="auroc")
    comparison = analyse([shared], MethodRegistry(), rope=1.0)
    spread = comparison.pairs[0].intervals["a"]
    assert spread is not None and spread.kind == T_OVER_SPLITS
    text = verdict(comparison)
    assert "the interval is Student's t over splits alone, which leaves out the test " in text
    assert "macro AUROC cannot be recomputed on resampled test images" in text
    assert "the interval and the decisions there are surer than the data allow." in text
    caption = tables(comparison)[1].caption
    assert "Student's t over splits alone" in caption and "also needs the interval" not in caption
    bacc = analyse([dataclasses.replace(shared, metric="balanced_accuracy")], MethodRegistry(), 1.0)
    assert "also needs the interval" in tables(bacc)[1].caption
