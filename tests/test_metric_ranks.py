"""The compared methods on the other metrics: mean ranks by metric over the pooled datasets
(ECE lowest first), their agreement with the tested metric, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.compare.build import analyse
from bench.compare.collect import scores_of
from bench.compare.metric_ranks import metrics_section, recorded
from bench.recipes.methods import MethodRegistry
from bench.results.archive import DatasetArchive

METHODS = ["ce", "ce+crt", "supcon+crt"]


def _archive(scores: dict[str, dict[str, float]], auprc: bool = True) -> DatasetArchive:
    """Three splits with their own test sets; each method scores the same on every split
    (`scores`: metric → method → value), macro-F1 alike for every method."""
    rows = []
    for split in range(3):
        for method in METHODS:
            row = {
                "run_id": f"{method}-d{split}", "method": method, "data_seed": split,
                "train_seed": 0, "split_hash": f"s{split}", "test_digest": f"t{split}",
                "macro_f1": 0.5,
            }  # fmt: skip
            row.update({metric: by_method[method] for metric, by_method in scores.items()})
            row["accuracy"] = row["balanced_accuracy"]
            if auprc or split:  # one run lacks AUPRC: it is left out everywhere
                row["auprc"] = 0.4
            rows.append(row)
    predicted = {row["run_id"]: np.zeros(4, np.int16) for row in rows}
    return DatasetArchive(
        pd.DataFrame(rows), predicted, {f"t{k}": np.zeros(4, np.int16) for k in range(3)}
    )


def test_mean_ranks_by_metric_over_the_pooled_datasets_and_their_agreement() -> None:
    bacc = {"ce": 0.5, "ce+crt": 0.6, "supcon+crt": 0.7}  # ranks 3, 2, 1 on both
    archives = {
        "a": _archive(
            {"balanced_accuracy": bacc, "auroc": {"ce": 0.9, "ce+crt": 0.8, "supcon+crt": 0.7},
             "ece": {"ce": 0.1, "ce+crt": 0.2, "supcon+crt": 0.3}}
        ),
        "b": _archive(
            {"balanced_accuracy": bacc, "auroc": {"ce": 0.8, "ce+crt": 0.9, "supcon+crt": 0.7},
             "ece": {"ce": 0.1, "ce+crt": 0.2, "supcon+crt": 0.3}},
            auprc=False,
        ),
        # Reported apart: its AUROC would put supcon+crt first, but it is not pooled.
        "synthetic": _archive(
            {"balanced_accuracy": bacc, "auroc": {"ce": 0.1, "ce+crt": 0.2, "supcon+crt": 0.9},
             "ece": {"ce": 0.1, "ce+crt": 0.2, "supcon+crt": 0.3}}
        ),
    }  # fmt: skip
    assert recorded(archives, METHODS) == [
        "accuracy", "balanced_accuracy", "macro_f1", "auroc", "ece"
    ]  # fmt: skip
    pooled = {"a": True, "b": True, "synthetic": False}
    scores = scores_of(archives, METHODS, "balanced_accuracy", pooled)
    comparison = analyse(scores, MethodRegistry(), rope=1.0)
    section = metrics_section(archives, comparison)
    ranks, means = section.tables
    table = ranks.numbers.set_index("method")
    assert list(table.index) == ["supcon+crt", "ce+crt", "ce"]  # by the tested metric
    assert table["balanced_accuracy"].tolist() == [1.0, 2.0, 3.0]
    assert table["auroc"].tolist() == [3.0, 1.5, 1.5]  # a: 3, 2, 1; b: 3, 1, 2
    assert table["ece"].tolist() == [3.0, 2.0, 1.0]  # lowest first
    assert table["macro_f1"].tolist() == [2.0, 2.0, 2.0]
    assert "not recorded everywhere: auprc, qwk" in ranks.caption
    # Spearman of (1, 2, 3) with (3, 1.5, 1.5): -1.5 / sqrt(2 × 1.5).
    rho = -1.5 / np.sqrt(2 * 1.5)
    assert f"{rho:.2f} (macro AUROC)" in section.text
    assert "ρ = 1.00 (accuracy)" in section.text and "– (macro-F1)" in section.text
    assert "mean ranks over a, b correlate" in section.text
    assert "Ranked first: supcon+crt by Acc, supcon+crt by BAcc" in section.text
    assert "ce+crt by AUROC, ce by ECE." in section.text
    long = means.numbers.set_index(["dataset", "method"])
    assert long.loc[("b", "ce+crt"), "auroc"] == pytest.approx(90.0)
    assert long.loc[("synthetic", "supcon+crt"), "auroc"] == pytest.approx(90.0)
    assert len(means.rows) == 9 and means.header[:2] == ["Dataset", "Method"]
