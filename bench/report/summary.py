"""The summary of a results folder: the report's main, outlier and per-class tables in one
`summary.md` (and their numbers in `summary.csv`), and the table `bench run` prints."""

from __future__ import annotations

from pathlib import Path

from bench.core.files import write_text_atomic
from bench.report import render
from bench.report.collect import Results
from bench.report.outliers import describe, find_outliers
from bench.report.tables import main_table, outliers_table, per_class_table

HEADLINE = ["Family", "Method", "Stage 2", "Seeds", "Acc", "BAcc", "Macro-F1"]
"""The main table's columns `bench run` prints (AUROC, AUPRC and the rest are in `summary.md`
and the report; the README's main-job table is this one, measured)."""


def printed_table(results: Results) -> str:
    """The main table's headline columns, as `bench run` prints them (no bold)."""
    return render.grid(main_table(results).select(HEADLINE), bold=False)


def outlier_lines(results: Results) -> list[str]:
    """One line per outlier run (`bench.report.outliers.find_outliers`), in the order of the
    methods: 'outlier: supcon+crt data seed 0 train seed 1 (run ...): BAcc 57.7, 17.7 below
    its method's median 75.4; stage 1 kept epoch 7 of 18'. No line when there is none."""
    outliers = find_outliers(results.runs, by=("label",))
    return [f"outlier: {describe(row, str(row['label']))}" for _, row in outliers.iterrows()]


def write_summary(results: Results, title: str) -> None:
    """`summary.md` in the results folder (the main table, the outlier runs when there are
    any, per-class recall / F1) and `summary.csv` (the main and per-class tables' numbers, one
    row per method)."""
    main, outliers = main_table(results), outliers_table(results)
    per_class = per_class_table(results)
    tables = [main, *([outliers] if outliers.rows else []), per_class]
    text = f"# {title}\n\n" + "\n".join(render.markdown(table) for table in tables)
    write_text_atomic(results.folder / "summary.md", text)
    numbers = main.numbers.merge(per_class.numbers, on="method", how="left")
    write_text_atomic(results.folder / "summary.csv", numbers.to_csv(index=False))


def write_empty_summary(folder: Path, title: str) -> None:
    """`summary.md` saying that no run has finished at the current settings, and an empty
    `summary.csv`, in place of a summary of earlier settings left behind."""
    write_text_atomic(folder / "summary.md", f"# {title}\n\nNo finished run at these settings.\n")
    write_text_atomic(folder / "summary.csv", "")
