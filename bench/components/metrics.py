"""Evaluation metrics of a classifier's predictions (scikit-learn where it has them).

Ranking metrics follow the field's reporting (MedMNIST v2, Yang et al., Sci Data 2023, report
AUROC and accuracy): macro one-vs-rest AUROC and AUPRC (average precision) from the softmax of
the logits, averaged over the classes present in the split's labels; quadratic-weighted kappa
for ordinal tasks (graded diseases).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from bench.core.errors import BenchError

SHOT_GROUPS = ("many", "medium", "few")


def balanced_accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Mean per-class recall over the classes present in `labels`."""
    return float(balanced_accuracy_score(labels, predictions))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def one_vs_rest_scores(logits: np.ndarray) -> np.ndarray:
    """Each class's one-vs-rest score: the log-odds of its softmax probability,
    log(p_c / (1 − p_c)) = z_c − logsumexp_{j≠c} z_j. It orders the items as p_c does, so
    AUROC and AUPRC are those of the softmax, without the ties that rounding p_c to 1 makes
    when logits lie far apart; with two classes the two scores are exact opposites."""
    columns = [
        logits[:, c] - logsumexp(np.delete(logits, c, axis=1), axis=1)
        for c in range(logits.shape[1])
    ]
    return np.stack(columns, axis=1)


def ranking_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Macro one-vs-rest AUROC and AUPRC (average precision) of the softmax of `logits`.

    The macro average runs over the classes present in `labels` (`auc_classes` of them): an
    absent class has no positive item, so its curves are undefined and it is left out. With
    fewer than two classes present, both are None. With two classes the macro AUROC is the
    AUROC of the second class's probability (MedMNIST's binary AUROC); the macro AUPRC is
    the mean of both classes' average precisions.
    """
    present = np.unique(labels)
    if len(present) < 2:
        return {"auroc": None, "auprc": None, "auc_classes": len(present)}
    scores = one_vs_rest_scores(logits)
    auroc = [roc_auc_score(labels == c, scores[:, c]) for c in present]
    auprc = [average_precision_score(labels == c, scores[:, c]) for c in present]
    return {
        "auroc": float(np.mean(auroc)),
        "auprc": float(np.mean(auprc)),
        "auc_classes": len(present),
    }


def quadratic_weighted_kappa(
    labels: np.ndarray, predictions: np.ndarray, n_classes: int
) -> float | None:
    """Cohen's kappa with quadratic weights (i − j)² over the grades 0 … n_classes − 1, for
    ordered classes; None when undefined (labels and predictions all one grade)."""
    if len(np.union1d(labels, predictions)) < 2:
        return None
    grades = list(range(n_classes))
    return float(cohen_kappa_score(labels, predictions, labels=grades, weights="quadratic"))


def confidence_bins(confidence: np.ndarray, n_bins: int = 15) -> np.ndarray:
    """The equal-width bin of each confidence: c falls in bin ⌈c·n_bins⌉ − 1, so bins are
    (lo, hi] (shared by the ECE and the reliability diagram)."""
    return np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 15
) -> float:
    """ECE of the top-1 confidence over `n_bins` equal-width bins (Guo et al., ICML 2017).

    Sum over bins of |accuracy − mean confidence| weighted by the bin's share of samples;
    bins as in `confidence_bins`.
    """
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(float)
    bins = confidence_bins(confidence, n_bins)
    total = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, correct, n_bins) - np.bincount(bins, confidence, n_bins))
    return float(gap.sum() / len(labels)) if total.sum() else 0.0


def shot_groups(train_counts: np.ndarray, rule: Any = "terciles") -> dict[str, list[int]]:
    """Classes split into many/medium/few-shot groups by training frequency.

    `rule` is `"terciles"` (classes ranked by count and cut into three near-equal groups, the
    most frequent first; for datasets with few classes) or a table `{many = 100, few = 20}`:
    many-shot has more than `many` training images, few-shot fewer than `few` (Liu et al., OLTR,
    CVPR 2019 use 100 and 20).
    """
    if rule == "terciles":
        order = np.argsort(-train_counts, kind="stable")
        parts = np.array_split(order, 3)
        return {g: sorted(int(c) for c in part) for g, part in zip(SHOT_GROUPS, parts, strict=True)}
    if isinstance(rule, dict) and set(rule) == {"many", "few"}:
        many, few = rule["many"], rule["few"]
        return {
            "many": [c for c, n in enumerate(train_counts) if n > many],
            "medium": [c for c, n in enumerate(train_counts) if few <= n <= many],
            "few": [c for c, n in enumerate(train_counts) if n < few],
        }
    raise BenchError(f"shot_groups must be 'terciles' or {{many = N, few = M}}, got {rule!r}.")


def classification_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    train_counts: np.ndarray,
    class_names: tuple[str, ...],
    shot_rule: Any = "terciles",
    *,
    ordinal: bool = False,
) -> dict[str, Any]:
    """All reported metrics of one split's predictions, JSON-serialisable; `qwk` (quadratic-
    weighted kappa) only for an `ordinal` task, whose classes are grades in index order."""
    classes = list(range(len(class_names)))
    predictions = logits.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=classes, zero_division=0
    )
    groups = shot_groups(train_counts, shot_rule)
    shot = {
        g: float(np.mean(recall[members])) if members else None for g, members in groups.items()
    }
    kappa = {"qwk": quadratic_weighted_kappa(labels, predictions, len(classes))} if ordinal else {}
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "balanced_accuracy": balanced_accuracy(labels, predictions),
        "macro_f1": float(
            f1_score(labels, predictions, labels=classes, average="macro", zero_division=0)
        ),
        **ranking_metrics(logits, labels),
        **kappa,
        "ece": expected_calibration_error(softmax(logits), labels),
        "shot_accuracy": shot,
        "shot_groups": {g: [class_names[c] for c in members] for g, members in groups.items()},
        "per_class": {
            name: {
                "recall": float(recall[k]),
                "precision": float(precision[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
                "train_count": int(train_counts[k]),
            }
            for k, name in enumerate(class_names)
        },
        "confusion_matrix": confusion_matrix(labels, predictions, labels=classes).tolist(),
    }
