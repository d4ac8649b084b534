"""The summary a run writes and prints is the report's own main table (mean ± sample std over
seeds, in percent), with the outlier runs and per-class recall / F1."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report import write_results

from bench.report import render
from bench.report.collect import load_results
from bench.report.summary import HEADLINE, printed_table, write_summary
from bench.report.tables import main_table, per_class_table


def test_summary_md_holds_the_reports_main_and_per_class_tables(tmp_path: Path) -> None:
    scores = write_results(tmp_path)
    results = load_results(tmp_path, "toy")
    write_summary(results, "toy: recorded runs")
    text = (tmp_path / "toy" / "summary.md").read_text()
    assert text.startswith("# toy: recorded runs\n")
    assert render.markdown(main_table(results)) in text
    assert render.markdown(per_class_table(results)) in text
    assert "Outlier" not in text  # none in these runs
    numbers = pd.read_csv(tmp_path / "toy" / "summary.csv").set_index("method")
    for method, values in scores.items():
        assert numbers.loc[method, "balanced_accuracy_mean"] == pytest.approx(np.mean(values))
        assert numbers.loc[method, "n_seeds"] == len(values)
    assert {"recall_rare", "f1_rare"} <= set(numbers.columns)
    assert "| AUROC | AUPRC |" in text and "QWK" not in text  # not an ordinal task
    assert {"auroc_mean", "auprc_mean"} <= set(numbers.columns)


def test_the_summary_of_an_ordinal_task_shows_kappa(tmp_path: Path) -> None:
    write_results(tmp_path, ordinal=True)
    write_summary(load_results(tmp_path, "toy"), "toy")
    assert "| AUROC | AUPRC | QWK |" in (tmp_path / "toy" / "summary.md").read_text()
    numbers = pd.read_csv(tmp_path / "toy" / "summary.csv")
    assert numbers["qwk_mean"].notna().all()


def test_an_outlier_run_is_listed_between_the_main_and_per_class_tables(tmp_path: Path) -> None:
    write_results(tmp_path)
    results = load_results(tmp_path, "toy")
    runs = results.runs.copy()
    first = runs.index[runs["method"] == "ce+crt"][0]
    runs.loc[first, "balanced_accuracy"] -= 0.5
    write_summary(dataclasses.replace(results, runs=runs), "toy")
    text = (tmp_path / "toy" / "summary.md").read_text()
    assert text.index("## Main comparison") < text.index("## Outlier runs")
    assert text.index("## Outlier runs") < text.index("## Per-class recall / F1")
    assert f"| ce+crt | {runs.loc[first, 'run_id']} |" in text


def test_the_printed_table_is_the_main_tables_headline_columns_without_bold(
    tmp_path: Path,
) -> None:
    scores = write_results(tmp_path)
    results = load_results(tmp_path, "toy")
    lines = printed_table(results).splitlines()
    assert lines[0] == "| " + " | ".join(HEADLINE) + " |"
    assert "**" not in "\n".join(lines)
    values = scores["ce+crt"]
    bacc = f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1):.1f}"
    (row,) = [line for line in lines if line.startswith("| two-stage | ce+crt |")]
    assert row.split(" | ")[3:6:2] == ["3", bacc]  # seeds, then BAcc after Acc
    assert "AUROC" not in lines[0]  # in summary.md and the report; the printed table is short
    # Rows follow the families, then the order the results were read in.
    methods = [line.split(" | ")[1] for line in lines[2:]]
    assert methods == ["ce", "focal", "ce+crt", "ce+lws", "supcon+crt"]
