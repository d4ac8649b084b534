"""Metrics against hand-computed values and a slow ECE reference."""

from __future__ import annotations

import numpy as np
import pytest

from bench.components.metrics import (
    classification_metrics,
    expected_calibration_error,
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
