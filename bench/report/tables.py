"""The report's tables: main comparison, per-class recall and F1, significance against a
reference. Each is built once as cells plus numbers, then rendered (see `render`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.core.errors import BenchError, unknown_name
from bench.recipes.methods import FAMILIES
from bench.report.collect import Results
from bench.report.outliers import OUTLIER_GAP, find_outliers, kept_epoch
from bench.report.statistics import MIN_PAIRS, bootstrap_difference, compare_paired

# Main-table metrics: column name, runs-table column, whether higher is better.
MAIN_METRICS = (
    ("Acc", "accuracy", True),
    ("BAcc", "balanced_accuracy", True),
    ("Macro-F1", "macro_f1", True),
    ("AUROC", "auroc", True),
    ("AUPRC", "auprc", True),
    ("Many", "shot_many", True),
    ("Medium", "shot_medium", True),
    ("Few", "shot_few", True),
    ("ECE", "ece", False),
)
# Quadratic-weighted kappa: a column after AUPRC when any run records it (ordinal tasks).
KAPPA = ("QWK", "qwk", True)


def main_metrics(runs: pd.DataFrame) -> tuple[tuple[str, str, bool], ...]:
    """The main table's metrics for `runs`: MAIN_METRICS, with QWK when any run has it."""
    if "qwk" not in runs or runs["qwk"].isna().all():
        return MAIN_METRICS
    after = [column for _, column, _ in MAIN_METRICS].index("auprc") + 1
    return (*MAIN_METRICS[:after], KAPPA, *MAIN_METRICS[after:])


@dataclass(frozen=True)
class Table:
    """A titled table of display cells; `best` holds the (row, column) cells to emphasise and
    `numbers` the unrounded values behind the cells (what the CSV holds)."""

    name: str
    title: str
    caption: str
    header: list[str]
    rows: list[list[str]]
    numbers: pd.DataFrame
    best: set[tuple[int, int]] = field(default_factory=set)
    text_columns: int = 1

    def select(self, columns: list[str]) -> Table:
        """The same table with only the `columns` named (header names, in the order given)."""
        keep = [self.header.index(column) for column in columns]
        return dataclasses.replace(
            self,
            header=list(columns),
            rows=[[row[k] for k in keep] for row in self.rows],
            best={(i, keep.index(j)) for i, j in self.best if j in keep},
            text_columns=sum(k < self.text_columns for k in keep),
        )


def _pct(mean: float, std: float | None = None, n: int = 1) -> str:
    if mean is None or math.isnan(mean):
        return "–"
    if n < 2 or std is None or math.isnan(std):
        return f"{100 * mean:.1f}"
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def _describe(results: Results, label: str) -> tuple[str, str]:
    first = results.of(label).iloc[0]
    return str(first["family"]), str(first["stage2_mode"] or "–")


def main_table(results: Results) -> Table:
    """One row per method, grouped by family: mean ± std over seeds of each metric, the number
    of seeds, and the best mean of each column marked. A metric that some of a method's runs
    lack (recorded before it existed) has no mean: its cell is "–"."""
    labels = sorted(
        results.labels,
        key=lambda lab: (FAMILIES.index(_describe(results, lab)[0]), results.labels.index(lab)),
    )
    metrics = main_metrics(results.runs)
    header = ["Family", "Method", "Stage 2", "Seeds", *(name for name, _, _ in metrics)]
    rows, records = [], []
    for label in labels:
        runs = results.of(label)
        family, stage2 = _describe(results, label)
        row = [family, label, stage2, str(len(runs))]
        record: dict[str, object] = {"family": family, "method": label, "n_seeds": len(runs)}
        for _, column, _ in metrics:
            values = runs.get(column, pd.Series(math.nan, index=runs.index)).astype(float)
            mean, std = values.mean(skipna=False), values.std(skipna=False)
            row.append(_pct(mean, std, len(runs)))
            record[f"{column}_mean"], record[f"{column}_std"] = mean, std
        rows.append(row)
        records.append(record)
    numbers = pd.DataFrame(records)
    best = set()
    for name, column, higher in metrics:
        means = numbers[f"{column}_mean"]
        if means.notna().any() and len(rows) > 1:
            target = means.max() if higher else means.min()
            column_index = header.index(name)
            best |= {(int(i), column_index) for i in np.flatnonzero(np.isclose(means, target))}
    return Table(
        name="main",
        title="Main comparison",
        caption=(
            "Test split, percent, mean ± std over seeds (Seeds: number of runs). BAcc is the "
            "mean per-class recall; AUROC and AUPRC are one-vs-rest areas under the ROC and "
            "precision-recall curves of the softmax, averaged over the classes present in the "
            "test split"
            + ("; QWK is the quadratic-weighted kappa of the grades" if KAPPA in metrics else "")
            + "; Many/Medium/Few are the accuracies of the shot groups; ECE is the expected "
            "calibration error (15 bins, lower is better). Best mean per column in bold. –: a "
            "run of the method has no value (recorded before the metric existed, or undefined "
            "on its test split)."
        ),
        header=header,
        rows=rows,
        numbers=numbers,
        best=best,
        text_columns=3,
    )


def outliers_table(results: Results) -> Table:
    """The runs more than OUTLIER_GAP below the median test balanced accuracy of their method's
    runs (over data seeds and train seeds), each named with its stage-1 kept epoch: shown
    under the main table, whose means include them. No row when there is none."""
    outliers = find_outliers(results.runs, by=("label",))
    header = ["Method", "Run", "Data seed", "Train seed", "BAcc", "Median", "Below", "Kept epoch"]
    rows = [
        [
            str(row["label"]),
            str(row["run_id"]),
            str(int(row["data_seed"])),
            str(int(row["train_seed"])),
            _pct(row["balanced_accuracy"]),
            _pct(row["method_median"]),
            _pct(row["gap"]),
            kept_epoch(row).removeprefix("kept epoch ") or "–",
        ]
        for _, row in outliers.iterrows()
    ]
    points = f"{100 * OUTLIER_GAP:.0f} points"
    return Table(
        name="outliers",
        title="Outlier runs",
        caption=(
            f"Runs whose test balanced accuracy is more than {points} below the median of "
            "their method's runs (over data seeds and train seeds), in percent; the main "
            "table's means include them. Kept epoch: the stage-1 epoch the run's checkpoint rule "
            "kept (the last by default), of those trained."
            if rows
            else f"No outliers: no run's test balanced accuracy is more than {points} below "
            "the median of its method's runs."
        ),
        header=header,
        rows=rows,
        numbers=outliers.rename(columns={"label": "method"}),
        text_columns=2,
    )


def per_class_table(results: Results) -> Table:
    """Recall and F1 per class (mean over seeds), classes ordered by training frequency."""
    header = ["Method", *(f"{c} (n={results.train_counts[c]})" for c in results.classes)]
    rows, records = [], []
    for label in results.labels:
        per_run = [results.metrics(r)["test"]["per_class"] for r in results.of(label)["run_id"]]
        row, record = [label], dict[str, object](method=label)
        for c in results.classes:
            recall = float(np.mean([p[c]["recall"] for p in per_run]))
            f1 = float(np.mean([p[c]["f1"] for p in per_run]))
            row.append(f"{_pct(recall)} / {_pct(f1)}")
            record[f"recall_{c}"], record[f"f1_{c}"] = recall, f1
        rows.append(row)
        records.append(record)
    return Table(
        name="per_class",
        title="Per-class recall / F1",
        caption=(
            "Test split, percent, recall / F1 per class, mean over seeds. Classes from most to "
            "least frequent in training (n: training images)."
        ),
        header=header,
        rows=rows,
        numbers=pd.DataFrame(records),
    )


def default_reference(results: Results) -> str:
    """The two-stage method without metric learning with the best mean *validation* balanced
    accuracy (else the best method overall): chosen without looking at the test split."""
    scores = results.runs.groupby("label")["val_balanced_accuracy"].mean().dropna()
    two_stage = [lab for lab in scores.index if _describe(results, lab)[0] == FAMILIES[1]]
    pool = scores[two_stage] if two_stage else scores
    return str(pool.idxmax()) if len(pool) else results.labels[0]


def _scores(results: Results, label: str) -> dict[tuple[int, int], float]:
    runs = results.of(label)
    keys = zip(runs["data_seed"].astype(int), runs["train_seed"].astype(int), strict=True)
    return dict(zip(keys, runs["balanced_accuracy"].astype(float), strict=True))


def significance_table(results: Results, reference: str | None = None) -> Table:
    """Each method against the reference in balanced accuracy: mean paired difference over
    shared seeds with a 95% t-interval, paired t-test and exact Wilcoxon p-values, and a paired
    bootstrap interval over test images for the first shared seed."""
    how = "given on the command line" if reference else "by validation balanced accuracy"
    if reference is None:
        reference = default_reference(results)
    elif reference not in results.labels:
        raise unknown_name("reference method (no finished runs)", reference, results.labels)
    base = _scores(results, reference)
    header = [
        "Method",
        "Seeds",
        "ΔBAcc [95% CI]",
        "t-test p",
        "Wilcoxon p",
        "Bootstrap ΔBAcc, one run [95% CI]",
        "Note",
    ]
    rows, records = [], []
    for label in results.labels:
        if label == reference:
            continue
        scores = _scores(results, label)
        paired = compare_paired(scores, base)
        shared = sorted(set(scores) & set(base))
        boot = _bootstrap(results, label, reference, shared[0]) if shared else None
        note = (
            "no shared seeds"
            if not shared
            else f"too few non-zero pairs (<{MIN_PAIRS}): Wilcoxon cannot reach p < 0.05"
            if paired.too_few
            else ""
        )
        rows.append(
            [
                label,
                str(paired.n),
                f"{_signed(paired.mean_difference)} [{_signed(paired.ci_low)}, "
                f"{_signed(paired.ci_high)}]",
                _p(paired.t_p_value),
                _p(paired.wilcoxon_p_value),
                "–"
                if boot is None
                else f"{_signed(boot[0])} [{_signed(boot[1])}, {_signed(boot[2])}] "
                f"(data seed {shared[0][0]}, train seed {shared[0][1]})",
                note,
            ]
        )
        records.append(
            {
                "method": label,
                "reference": reference,
                "n_pairs": paired.n,
                "n_nonzero_pairs": paired.n_nonzero,
                "mean_difference": paired.mean_difference,
                "ci_low": paired.ci_low,
                "ci_high": paired.ci_high,
                "t_p_value": paired.t_p_value,
                "wilcoxon_p_value": paired.wilcoxon_p_value,
                "bootstrap_difference": boot[0] if boot else math.nan,
                "bootstrap_low": boot[1] if boot else math.nan,
                "bootstrap_high": boot[2] if boot else math.nan,
            }
        )
    if not rows:
        raise BenchError("significance needs at least two methods with finished runs.")
    return Table(
        name="significance",
        title=f"Against {reference}",
        caption=(
            f"Balanced accuracy of each method minus {reference} (reference {how}), in "
            "percentage points, paired by (data seed, train seed). p-values are two-sided; "
            "the bootstrap resamples test images 2000 times for one pair of runs."
        ),
        header=header,
        rows=rows,
        numbers=pd.DataFrame(records),
    )


def _bootstrap(
    results: Results, label: str, reference: str, seed: tuple[int, int]
) -> tuple[float, float, float]:
    def test_predictions(which: str) -> tuple[np.ndarray, np.ndarray]:
        runs = results.of(which)
        run_id = runs[(runs["data_seed"] == seed[0]) & (runs["train_seed"] == seed[1])]
        stored = results.predictions(str(run_id["run_id"].iloc[0]))
        return stored["test_labels"], stored["test_logits"].argmax(axis=1)

    labels, predicted = test_predictions(label)
    reference_labels, reference_predicted = test_predictions(reference)
    if not np.array_equal(labels, reference_labels):
        raise BenchError(
            f"{label} and {reference} were tested on different images for seed {seed}; "
            "their results folders disagree."
        )
    return bootstrap_difference(labels, predicted, reference_predicted, len(results.classes))


def _signed(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:+.1f}"


def _p(value: float) -> str:
    if math.isnan(value):
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"
