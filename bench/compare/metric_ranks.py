"""The compared methods on the field's other metrics: does their ranking depend on the metric?

Beside the metric a comparison tests on, each method's mean over a dataset's blocks in every
metric its runs record on every compared dataset (accuracy, balanced accuracy, macro-F1, macro
AUROC and AUPRC, ECE; kappa only where every dataset is ordinal), its mean rank per metric over
the pooled datasets, and Spearman's correlation of each metric's mean ranks with the tested
metric's. Descriptive: nothing here is tested, and the page's count of tests leaves it out.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

from bench.compare.build import Comparison, Section
from bench.compare.collect import scores_of
from bench.compare.stats import mean_ranks
from bench.components.scalars import SCALARS
from bench.report.tables import Table
from bench.results.archive import DatasetArchive


def recorded(archives: dict[str, DatasetArchive], methods: list[str]) -> list[str]:
    """The metrics (keys of `SCALARS`, in its order) that every run of `methods` records on
    every dataset of `archives`."""
    runs = [archive.runs[archive.runs["method"].isin(methods)] for archive in archives.values()]
    return [key for key in SCALARS if all(key in r and r[key].notna().all() for r in runs)]


def metric_means(
    archives: dict[str, DatasetArchive], comparison: Comparison
) -> dict[str, pd.DataFrame]:
    """By metric (those `recorded`), each method's mean over each dataset's blocks (× 100; a
    row per dataset, a column per method), over the blocks the comparison uses."""
    methods = list(comparison.means.columns)
    pooled = {s.name: s.pooled for s in comparison.scores}
    means = {}
    for key in recorded(archives, methods):
        scores = scores_of(archives, methods, key, pooled)
        means[key] = pd.DataFrame({s.name: s.blocks.mean() for s in scores}).T[methods]
    return means


def metrics_section(archives: dict[str, DatasetArchive], comparison: Comparison) -> Section:
    """The page's section on the other metrics: a paragraph, the mean ranks by metric, and
    each method's means by dataset and metric."""
    means = metric_means(archives, comparison)
    tested = comparison.metric.key
    pooled = list(comparison.pooled)
    ranks = pd.DataFrame(
        {
            key: mean_ranks(table.loc[pooled], SCALARS[key].higher_is_better).loc["mean rank"]
            for key, table in means.items()
        }
    )
    order = ranks[tested].sort_values(kind="stable").index
    ranks = ranks.loc[order]
    agreement = {
        key: _spearman(ranks[tested], ranks[key]) for key in ranks.columns if key != tested
    }
    left_out = [key for key in SCALARS if key not in means]
    rank_table = Table(
        name="metric_ranks",
        title="Mean rank by metric",
        caption=(
            f"Each method's mean rank over {', '.join(pooled)} in every metric its runs "
            "record on every dataset (1 best, ties averaged; ECE lowest first), sorted by "
            f"{SCALARS[tested].short}, the metric tested; descriptive, not tested"
            + (f"; not recorded everywhere: {', '.join(left_out)}" if left_out else "")
            + "."
        ),
        header=["Method", *(SCALARS[key].short for key in ranks.columns)],
        rows=[
            [method, *(f"{ranks.loc[method, key]:.2f}" for key in ranks.columns)]
            for method in order
        ],
        numbers=ranks.reset_index(names="method"),
    )
    long = pd.concat(
        {key: table.stack() for key, table in means.items()}, axis=1, names=["metric"]
    ).rename_axis(["dataset", "method"])
    mean_table = Table(
        name="metric_means",
        title="Means by dataset and metric",
        caption=(
            "Each method's test score (× 100) in each recorded metric, the mean over the "
            "dataset's blocks that the comparison uses."
        ),
        header=["Dataset", "Method", *(SCALARS[key].short for key in means)],
        rows=[
            [dataset, method, *(f"{long.loc[(dataset, method), key]:.1f}" for key in means)]
            for dataset, method in long.index
        ],
        numbers=long.reset_index(),
        text_columns=2,
    )
    return Section(_paragraph(comparison, ranks, agreement), [rank_table, mean_table])


def _spearman(first: pd.Series, second: pd.Series) -> float:
    """Spearman's rank correlation (NaN where either side is constant)."""
    if first.nunique() < 2 or second.nunique() < 2:
        return math.nan
    return float(stats.spearmanr(first, second).statistic)


def _paragraph(comparison: Comparison, ranks: pd.DataFrame, agreement: dict[str, float]) -> str:
    tested = SCALARS[comparison.metric.key]
    if not agreement:
        return f"No metric other than {tested.long} is recorded by every run compared."
    said = ", ".join(
        f"{rho:.2f} ({SCALARS[key].long})" if math.isfinite(rho) else f"– ({SCALARS[key].long})"
        for key, rho in agreement.items()
    )
    first = ", ".join(f"{ranks[key].idxmin()} by {SCALARS[key].short}" for key in ranks.columns)
    return (
        "On the field's other metrics (descriptive, not tested): the mean ranks over "
        f"{', '.join(comparison.pooled)} correlate with those by {tested.long} at Spearman's "
        f"ρ = {said}. Ranked first: {first}."
    )
