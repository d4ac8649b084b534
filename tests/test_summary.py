"""Summary tables: mean ± sample std over seeds, grouping and ordering, Markdown cells."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.report.summary import HEADLINE, format_table, summarise


def _runs() -> pd.DataFrame:
    rows = []
    for method, values in (("ce", [0.30, 0.40, 0.50]), ("rs-cb", [0.70, 0.70])):
        for seed, value in enumerate(values):
            rows.append(
                {
                    "family": "one-stage",
                    "method": method,
                    "stage2_mode": "",
                    "variant": "s",
                    "status": "done",
                    "accuracy": 0.8,
                    "balanced_accuracy": value,
                    "macro_f1": value / 2,
                    "recall_nv": 1.0,
                    "recall_df": value,
                    "train_seed": seed,
                }
            )
    rows.append({**rows[0], "status": "failed", "balanced_accuracy": None})
    return pd.DataFrame(rows)


def test_mean_and_sample_std_over_seeds_ignore_failed_runs() -> None:
    table = summarise(_runs()).set_index("method")
    assert table.loc["ce", "n_seeds"] == 3
    assert table.loc["ce", "balanced_accuracy_mean"] == pytest.approx(0.4)
    assert table.loc["ce", "balanced_accuracy_std"] == pytest.approx(0.1)  # ddof = 1
    assert table.loc["rs-cb", "balanced_accuracy_std"] == pytest.approx(0.0)


def test_rows_follow_the_requested_method_order() -> None:
    assert list(summarise(_runs(), ["rs-cb", "ce"])["method"]) == ["rs-cb", "ce"]
    assert list(summarise(_runs())["method"]) == ["ce", "rs-cb"]


def test_markdown_cells_are_percent_mean_and_std() -> None:
    text = format_table(summarise(_runs()), HEADLINE)
    assert "| one-stage | ce | – | 3 | 80.0 ± 0.0 | 40.0 ± 10.0 | 20.0 ± 5.0 |" in text
