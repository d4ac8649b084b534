"""Mean ± std over seeds per method: the summary tables printed and written after a run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.core.files import write_text_atomic
from bench.recipes.methods import FAMILIES
from bench.report.outliers import OUTLIER_GAP, describe

HEADLINE = {"accuracy": "Acc", "balanced_accuracy": "BAcc", "macro_f1": "Macro-F1"}
FULL = {**HEADLINE, "shot_many": "Many", "shot_medium": "Medium", "shot_few": "Few", "ece": "ECE"}
KEYS = ["family", "method", "stage2_mode", "variant"]


def summarise(runs: pd.DataFrame, method_order: list[str] | None = None) -> pd.DataFrame:
    """Per (family, method, stage-2 mode, variant): number of seeds, then mean and std of every
    metric.

    Rows are grouped by family, then follow `method_order` (unlisted methods last, by name).
    """
    if runs.empty:  # no run recorded (every job failed before its first): an empty table
        runs = pd.DataFrame(columns=["status", *KEYS])
    done = runs[runs["status"] == "done"]
    metrics = [c for c in done.columns if c in FULL or c.startswith("recall_")]
    grouped = done.groupby(KEYS, sort=False, dropna=False)[metrics]
    table = grouped.mean().add_suffix("_mean").join(grouped.std().add_suffix("_std"))
    table.insert(0, "n_seeds", grouped.size())
    table = table.reset_index()
    rank = {name: i for i, name in enumerate(method_order or [])}
    order = pd.DataFrame(
        {
            "family": table["family"].map({f: i for i, f in enumerate(FAMILIES)}),
            "method": table["method"].map(lambda m: rank.get(m, len(rank))),
            "name": table["method"],
        }
    )
    return table.loc[order.sort_values(["family", "method", "name"]).index].reset_index(drop=True)


def _cell(mean: float, std: float, n: int) -> str:
    if pd.isna(mean):
        return "–"
    return f"{100 * mean:.1f}" if n < 2 or pd.isna(std) else f"{100 * mean:.1f} ± {100 * std:.1f}"


def format_table(summary: pd.DataFrame, columns: dict[str, str]) -> str:
    """A Markdown table (percentages, mean ± std over seeds) with one row per method."""
    header = ["Family", "Method", "Stage 2", "Seeds", *columns.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in summary.iterrows():
        cells = [_cell(row[f"{k}_mean"], row[f"{k}_std"], row["n_seeds"]) for k in columns]
        lines.append(
            "| "
            + " | ".join(
                [
                    row["family"],
                    row["method"],
                    row["stage2_mode"] or "–",
                    str(row["n_seeds"]),
                    *cells,
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def per_class_columns(summary: pd.DataFrame) -> dict[str, str]:
    """Per-class recall columns, named by class, in the order of the runs table."""
    return {
        c[: -len("_mean")]: c[len("recall_") : -len("_mean")]
        for c in summary.columns
        if c.startswith("recall_") and c.endswith("_mean")
    }


def outlier_lines(outliers: pd.DataFrame, summary: pd.DataFrame | None = None) -> list[str]:
    """One line per outlier run (rows of `bench.report.outliers.find_outliers`), methods in the
    order of the `summary` table's rows when given: 'outlier: supcon+crt data seed 0 train seed 1
    (run ...): BAcc 57.7, 17.7 below its method's median 75.4; stage 1 kept epoch 7 of 18'.
    No line when there is no outlier."""
    if outliers.empty:
        return []
    rank = {m: i for i, m in enumerate(dict.fromkeys([] if summary is None else summary["method"]))}
    ordered = outliers.assign(_rank=outliers["method"].map(lambda m: rank.get(m, len(rank))))
    ordered = ordered.sort_values("_rank", kind="stable")
    return [f"outlier: {describe(row, str(row['method']))}" for _, row in ordered.iterrows()]


def write_summary(
    summary: pd.DataFrame, folder: Path, title: str, outliers: pd.DataFrame | None = None
) -> None:
    """`summary.md` (main table, the outlier runs when there are any, per-class recall table)
    and `summary.csv` (all numbers)."""
    lines = outlier_lines(outliers, summary) if outliers is not None else []
    listed = (
        f"## Outliers\n\nRuns more than {100 * OUTLIER_GAP:.0f} points below the median "
        "test balanced accuracy of their method's runs; they are in the means above.\n\n"
        + "".join(f"- {line.removeprefix('outlier: ')}\n" for line in lines)
        + "\n"
        if lines
        else ""
    )
    text = (
        f"# {title}\n\nTest split, percent, mean ± std over seeds.\n\n"
        f"{format_table(summary, FULL)}\n\n{listed}## Per-class recall\n\n"
        f"{format_table(summary, per_class_columns(summary))}\n"
    )
    write_text_atomic(folder / "summary.md", text)
    write_text_atomic(folder / "summary.csv", summary.to_csv(index=False))
