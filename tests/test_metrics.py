"""Metrics against hand-computed values and slow references (ECE, AUROC by counting pairs,
kappa by its formula)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from bench.components.metrics import (
    classification_metrics,
    expected_calibration_error,
    quadratic_weighted_kappa,
    ranking_metrics,
    shot_groups,
    softmax,
)
from bench.core.errors import BenchError


def _slow_ece(probabilities: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [
            i
            for i, p in enumerate(probabilities)
            if (lo < p.max() <= hi) or (b == 0 and p.max() == 0)
        ]
        if members:
            accuracy = np.mean([probabilities[i].argmax() == labels[i] for i in members])
            confidence = np.mean([probabilities[i].max() for i in members])
            total += len(members) / len(labels) * abs(accuracy - confidence)
    return total


def test_ece_matches_slow_reference() -> None:
    rng = np.random.default_rng(0)
    probabilities = softmax(rng.normal(size=(500, 4)) * 2)
    labels = rng.integers(0, 4, size=500)
    assert expected_calibration_error(probabilities, labels, 15) == pytest.approx(
        _slow_ece(probabilities, labels, 15)
    )


def test_ece_hand_computed() -> None:
    # Two samples at confidence 0.9 (one right) and one at 0.6 (right), 10 bins:
    # bin (0.8, 0.9]: |0.5 − 0.9| · 2/3; bin (0.5, 0.6]: |1 − 0.6| · 1/3.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4]])
    labels = np.array([0, 1, 0])
    assert expected_calibration_error(probabilities, labels, 10) == pytest.approx(
        0.4 * 2 / 3 + 0.4 / 3
    )


def test_classification_metrics_hand_computed() -> None:
    # Class 0: 4 items, 3 right; class 1: 2 items, 1 right; class 2: 1 item, right.
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    predictions = np.array([0, 0, 0, 1, 1, 0, 2])
    logits = np.eye(3)[predictions] * 5
    result = classification_metrics(logits, labels, np.array([40, 20, 10]), ("a", "b", "c"))
    assert result["accuracy"] == pytest.approx(5 / 7)
    assert result["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 2 + 1) / 3)
    # Precision: a 3/4, b 1/2, c 1; recall a 3/4, b 1/2, c 1 → F1 equal to them.
    assert result["macro_f1"] == pytest.approx((0.75 + 0.5 + 1) / 3)
    assert result["per_class"]["b"] == {
        "recall": 0.5,
        "precision": 0.5,
        "f1": 0.5,
        "support": 2,
        "train_count": 20,
    }
    assert result["confusion_matrix"] == [[3, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert result["shot_accuracy"] == {"many": 0.75, "medium": 0.5, "few": 1.0}


def test_shot_groups_by_terciles_and_thresholds() -> None:
    counts = np.array([6705, 1113, 1099, 514, 327, 142, 115])
    assert shot_groups(counts) == {"many": [0, 1, 2], "medium": [3, 4], "few": [5, 6]}
    assert shot_groups(counts, {"many": 1000, "few": 200}) == {
        "many": [0, 1, 2],
        "medium": [3, 4],
        "few": [5, 6],
    }
    with pytest.raises(BenchError, match="shot_groups"):
        shot_groups(counts, "quartiles")


# Softmax probabilities of five items over three classes (the logits are their logarithms).
PROBABILITIES = np.array(
    [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7], [0.5, 0.1, 0.4]]
)
LABELS = np.array([0, 0, 1, 1, 2])


def _pairs_auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The share of (positive, negative) pairs the score orders right, ties counting half."""
    pos, neg = scores[positive], scores[~positive]
    return float(np.mean((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])))


def test_macro_auroc_and_auprc_hand_computed() -> None:
    # One-vs-rest AUROC by counting (positive, negative) pairs ordered right:
    # class 0, positives 0.6 and 0.2 against 0.3, 0.1, 0.5: 3 + 1 of 6;
    # class 1, positives 0.4 and 0.2 against 0.3, 0.5, 0.1: 2 + 1 of 6;
    # class 2, positive 0.4 against 0.1, 0.3, 0.3, 0.7: 3 of 4.
    result = ranking_metrics(np.log(PROBABILITIES), LABELS)
    assert result["auroc"] == pytest.approx((4 / 6 + 3 / 6 + 3 / 4) / 3)  # 23/36
    # Average precision, sum over the positives of (recall step) x (precision there):
    # class 0 ranks its positives 1st and 4th: 0.5 * 1 + 0.5 * 2/4 = 0.75;
    # class 1 ranks them 2nd and 4th: 0.5 * 1/2 + 0.5 * 2/4 = 0.5; class 2 2nd: 1 * 1/2.
    assert result["auprc"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)  # 7/12
    assert result["auc_classes"] == 3


def test_ranking_metrics_are_those_of_the_softmax() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(300, 4)) * 2
    labels = rng.integers(0, 4, size=300)
    probabilities = softmax(logits)
    result = ranking_metrics(logits, labels)
    assert result["auroc"] == pytest.approx(
        roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    )
    assert result["auprc"] == pytest.approx(
        average_precision_score(np.eye(4)[labels], probabilities, average="macro")
    )
    for c in range(4):  # and the slow reference agrees with scikit-learn's one-vs-rest AUROC
        positive = labels == c
        assert _pairs_auroc(probabilities[:, c], positive) == pytest.approx(
            roc_auc_score(positive, probabilities[:, c])
        )


def test_a_class_absent_from_the_split_is_left_out_of_the_macro_average() -> None:
    # Four classes, none of class 3 in the labels: the average covers classes 0, 1 and 2. A
    # fourth column of probability 0.2 divides the others by 1.2, which keeps each class's
    # order of items, so their curves are those of the three-class example above.
    logits = np.log(np.hstack([PROBABILITIES, np.full((5, 1), 0.2)]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no undefined-metric warning, no NaN
        result = ranking_metrics(logits, LABELS)
        one_class = ranking_metrics(logits, np.zeros(5, int))
    assert result == {
        "auroc": pytest.approx((4 / 6 + 3 / 6 + 3 / 4) / 3),
        "auprc": pytest.approx((0.75 + 0.5 + 0.5) / 3),
        "auc_classes": 3,
    }
    assert one_class == {"auroc": None, "auprc": None, "auc_classes": 1}


def test_binary_auroc_is_medmnists_positive_class_auroc_even_when_the_softmax_saturates() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(200, 2)) * 3
    labels = rng.integers(0, 2, size=200)
    result = ranking_metrics(logits, labels)
    # MedMNIST's evaluator scores a binary task by the softmax probability of class 1.
    assert result["auroc"] == pytest.approx(roc_auc_score(labels, softmax(logits)[:, 1]))
    positive = np.stack([labels == 0, labels == 1])
    assert result["auprc"] == pytest.approx(
        np.mean([average_precision_score(positive[c], softmax(logits)[:, c]) for c in (0, 1)])
    )
    # Logit gaps of 45 and 40: class 0's probability rounds to 1 for both items (a tie), class
    # 1's does not; the one-vs-rest scores keep both orders, so the macro AUROC stays exact.
    logits = np.array([[45.0, 0.0], [40.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    labels = np.array([0, 1, 1, 1])
    assert softmax(logits)[0, 0] == softmax(logits)[1, 0] == 1.0
    assert ranking_metrics(logits, labels)["auroc"] == pytest.approx(
        roc_auc_score(labels, softmax(logits)[:, 1])  # 1.0: the item at gap 45 is class 0
    )


def _kappa_by_formula(confusion: np.ndarray) -> float:
    """1 − Σ w·O / Σ w·E with w_ij = (i − j)² and E the outer product of the margins over n."""
    grades = np.arange(len(confusion))
    weights = (grades[:, None] - grades[None]) ** 2
    expected = np.outer(confusion.sum(1), confusion.sum(0)) / confusion.sum()
    return float(1 - (weights * confusion).sum() / (weights * expected).sum())


def test_quadratic_weighted_kappa_is_reported_for_ordinal_tasks_only() -> None:
    # Confusion (rows true, columns predicted) [[2, 1, 0], [0, 2, 1], [1, 0, 1]]: margins
    # (3, 3, 2) both ways, Σ w·O = 1 + 1 + 4 = 6, Σ w·E = (9 + 24 + 9 + 6 + 24 + 6) / 8 = 9.75,
    # kappa = 1 − 6 / 9.75 = 5/13.
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    predictions = np.array([0, 0, 1, 1, 1, 2, 0, 2])
    logits = np.eye(3)[predictions] * 5
    counts, names = np.array([4, 3, 1]), ("g0", "g1", "g2")
    result = classification_metrics(logits, labels, counts, names, ordinal=True)
    assert result["qwk"] == pytest.approx(5 / 13)
    assert result["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [1, 0, 1]]
    assert "qwk" not in classification_metrics(logits, labels, counts, names)
    # All one grade: no disagreement is expected, kappa is undefined (None, not NaN).
    assert quadratic_weighted_kappa(labels[:2], predictions[:2], 3) is None


def test_kappa_weighs_grades_by_their_index_even_when_one_is_absent() -> None:
    rng = np.random.default_rng(3)
    grades = np.array([0, 1, 3, 4])  # grade 2 neither labelled nor predicted
    labels, predictions = rng.choice(grades, 60), rng.choice(grades, 60)
    confusion = np.zeros((5, 5))
    np.add.at(confusion, (labels, predictions), 1)
    logits = np.eye(5)[predictions] * 5
    result = classification_metrics(
        logits, labels, np.arange(5, 0, -1), tuple("abcde"), ordinal=True
    )
    assert result["qwk"] == pytest.approx(_kappa_by_formula(confusion))
