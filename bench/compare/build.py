"""`bench compare`: the comparison over datasets, analysed and written to `results/compare/`.

Tables (Markdown, CSV, LaTeX), figures (PNG, PDF with `pdf`), a verdict paragraph and one
self-contained `index.html`, written to a scratch folder and swapped in as the report is.
"""

from __future__ import annotations

import math
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scikit_posthocs as posthocs
from matplotlib.figure import Figure

from bench.compare.collect import DatasetScores
from bench.compare.intervals import (
    BOOTSTRAP,
    BOOTSTRAPPED,
    Interval,
    interval,
    shared_interval,
    split_differences,
)
from bench.compare.stats import (
    MIN_OBSERVATIONS,
    Friedman,
    Posterior,
    friedman,
    mean_ranks,
    signed_rank,
)
from bench.components.scalars import SCALARS, Scalar
from bench.core.claims import join, try_claim
from bench.core.errors import BenchError
from bench.core.files import SESSION, write_text_atomic
from bench.recipes.methods import REPRESENTATION_APPROACHES, MethodRegistry
from bench.report import render
from bench.report.build import swap_in
from bench.report.page import page
from bench.report.plots import data_span, save_figure
from bench.report.tables import Table

LEVEL = 0.95  # the posterior probability a decision needs
# How the verdict names each decision against cross-entropy under the same stage 2.
OUTCOMES = {
    "better": "Better than cross-entropy under the same stage 2",
    "equivalent": "Practically equivalent to it",
    "worse": "Worse than it",
}


@dataclass(frozen=True)
class PairResult:
    """A representation-learning method (its `approach`) against the same stage 2 on the
    reference stage 1: per dataset the posterior over its splits, the interval of the mean
    difference and the decision; and the posterior pooled over the pooled datasets."""

    method: str
    baseline: str
    approach: str
    per_dataset: dict[str, Posterior | None]
    pooled: Posterior | None
    intervals: dict[str, Interval | None]
    decisions: dict[str, str]


@dataclass(frozen=True)
class Comparison:
    """Everything `bench compare` found."""

    scores: list[DatasetScores]
    means: pd.DataFrame
    ranks: pd.DataFrame
    friedman: Friedman
    pairs: list[PairResult]
    rope: float
    metric: Scalar
    pooled: tuple[str, ...]  # the datasets the mean rank, Friedman and pooled tests are over
    reference: str = "ce"

    @property
    def apart(self) -> list[str]:
        """The datasets reported apart from the pooled analyses."""
        return [s.name for s in self.scores if s.name not in self.pooled]

    def tests(self) -> int:
        """How many tests the page makes that could decide (enough observations): per (pair,
        dataset) and pooled."""
        tested = [[*pair.per_dataset.values(), pair.pooled] for pair in self.pairs]
        return sum(
            posterior is not None and posterior.observations >= MIN_OBSERVATIONS
            for row in tested
            for posterior in row
        )


def metric_pairs(
    methods: list[str], registry: MethodRegistry, reference: str = "ce"
) -> list[tuple[str, str]]:
    """(representation learner, its baseline): `X+S` whose stage 1 X is a representation
    learner (`REPRESENTATION_APPROACHES`: supervised metric learning, long-tailed contrastive,
    self-supervised, augmentation) against `reference+S`, for every such pair among
    `methods`, in the order of the approaches."""
    pairs = []
    for name in methods:
        method = registry.get(name)
        learner = method.stage1.approach in REPRESENTATION_APPROACHES
        if learner and method.stage2 and not method.tuning and method.stage1.name != reference:
            baseline = f"{reference}+{method.stage2.name}"
            if baseline in methods:
                pairs.append((name, baseline))
    order = {a: k for k, a in enumerate(REPRESENTATION_APPROACHES)}
    return sorted(pairs, key=lambda pair: order[registry.get(pair[0]).stage1.approach])


def decide(
    posterior: Posterior,
    spread: Interval | None,
    rope: float,
    higher_is_better: bool = True,
    level: float = LEVEL,
) -> str:
    """The posterior's decision at `level`, kept where the splits share a test set only if
    the bootstrap interval at `level` (which counts the test sample's variance) agrees: better
    or worse need it on that side of zero, equivalent need it within the ROPE; else
    undecided."""
    made = posterior.decision(level)
    if made == "undecided" or spread is None or spread.kind != BOOTSTRAP:
        return made
    low, high = spread.bounds(level)
    low, high = (low, high) if higher_is_better else (-high, -low)
    agrees = {"better": low > 0, "worse": high < 0, "equivalent": -rope <= low and high <= rope}
    return made if agrees[made] else "undecided"


def analyse(
    scores: list[DatasetScores], registry: MethodRegistry, rope: float, reference: str = "ce"
) -> Comparison:
    """Means and ranks per dataset, the Friedman/Nemenyi tests, and the paper's pairs, in the
    metric the scores hold (one, as `collect` gives them), ranked and tested in its direction
    (lower ECE is better). Mean ranks, Friedman and the pooled tests are over the pooled
    datasets (every dataset when none is)."""
    metric = SCALARS[scores[0].metric]
    higher = metric.higher_is_better
    methods = list(scores[0].blocks.columns)
    means = pd.DataFrame({s.name: s.blocks.mean() for s in scores}).T[methods]
    pooled_names = tuple(s.name for s in scores if s.pooled) or tuple(means.index)
    pooled_means = means.loc[list(pooled_names)]
    results = []
    for method, baseline in metric_pairs(methods, registry, reference):
        per_dataset: dict[str, Posterior | None] = {}
        intervals: dict[str, Interval | None] = {}
        decisions: dict[str, str] = {}
        for s in scores:
            # Runs on one split share its test set: one observation per distinct split.
            splits = s.blocks.groupby(level="split").mean()
            first, second = splits[method].to_numpy(), splits[baseline].to_numpy()
            posterior = signed_rank(first, second, rope, higher) if len(first) > 1 else None
            per_dataset[s.name] = posterior
            intervals[s.name] = interval(s, method, baseline)
            if posterior is not None:
                decisions[s.name] = decide(posterior, intervals[s.name], rope, higher)
        pooled = None
        if len(pooled_names) > 1:
            pooled = signed_rank(
                pooled_means[method].to_numpy(), pooled_means[baseline].to_numpy(), rope, higher
            )
        approach = registry.get(method).stage1.approach
        results.append(
            PairResult(method, baseline, approach, per_dataset, pooled, intervals, decisions)
        )
    ranks = mean_ranks(pooled_means, higher)
    ranks = pd.concat([mean_ranks(means, higher).drop(index="mean rank"), ranks.loc[["mean rank"]]])
    return Comparison(
        scores,
        means,
        ranks,
        friedman(pooled_means),
        results,
        rope,
        metric,
        pooled_names,
        reference,
    )


def posterior_text(
    posterior: Posterior | None, spread: Interval | None = None, decision: str = ""
) -> str:
    if posterior is None:
        return "–"
    around = f" {spread.text()}" if spread is not None else ""
    return (
        f"{posterior.mean_difference:+.1f}{around}: {posterior.better:.2f} / "
        f"{posterior.equivalent:.2f} / {posterior.worse:.2f} "
        f"({decision or posterior.decision(LEVEL)})"
    )


def tables(comparison: Comparison) -> list[Table]:
    """The ranks table and the pairs table."""
    means, ranks, metric = comparison.means, comparison.ranks, comparison.metric
    splits = {s.name: s.described() for s in comparison.scores}
    blocks = {s.name: len(s.blocks) for s in comparison.scores}
    header = [
        "Method",
        *(f"{d} {metric.short}" for d in means.index),
        *(f"{d} rank" for d in means.index),
    ]
    header.append("Mean rank")
    order = ranks.T["mean rank"].sort_values().index
    rows = [
        [
            method,
            *(f"{means.loc[d, method]:.1f}" for d in means.index),
            *(f"{ranks.loc[d, method]:.1f}" for d in means.index),
            f"{ranks.loc['mean rank', method]:.2f}",
        ]
        for method in order
    ]
    ranked = ranks.T.rename(columns={"mean rank": "mean"})
    # Balanced accuracy keeps the column name it had before other metrics could be compared.
    suffix = "_bacc" if metric.key == "balanced_accuracy" else f"_{metric.key}"
    numbers = pd.concat([means.T.add_suffix(suffix), ranked.add_suffix("_rank")], axis=1)
    described = ", ".join(f"{d}: {blocks[d]} run(s) on {splits[d]}" for d in means.index)
    over = (
        f"; the mean rank is over {', '.join(comparison.pooled)} ({', '.join(comparison.apart)} "
        "reported apart)"
        if comparison.apart
        else ""
    )
    rank_table = Table(
        name="ranks",
        title="Mean rank over datasets",
        caption=(
            f"Test {metric.long} (× 100, mean over each dataset's blocks; {described}) and "
            "its rank per dataset (1 best, ties averaged"
            + ("" if metric.higher_is_better else "; lower is better")
            + f"){over}; sorted by mean rank."
        ),
        header=header,
        rows=rows,
        numbers=numbers.loc[order].reset_index(names="method"),
        best={(0, len(header) - 1)},
    )
    pair_header = ["Approach", "Method", "Against", *comparison.means.index, "Pooled"]
    pair_rows, records = [], []
    for pair in comparison.pairs:
        cells = [pair.approach, pair.method, pair.baseline]
        for d in comparison.means.index:
            cells.append(
                posterior_text(pair.per_dataset[d], pair.intervals[d], pair.decisions.get(d, ""))
            )
        cells.append(posterior_text(pair.pooled))
        pair_rows.append(cells)
        for d, posterior in [*pair.per_dataset.items(), ("pooled", pair.pooled)]:
            if posterior is not None:
                spread = pair.intervals.get(d)
                records.append(
                    {"approach": pair.approach, "method": pair.method,
                     "against": pair.baseline, "dataset": d,
                     "mean_difference": posterior.mean_difference,
                     "ci_low": spread.low if spread else None,
                     "ci_high": spread.high if spread else None,
                     "interval": spread.kind if spread else "",
                     "p_better": posterior.better,
                     "p_equivalent": posterior.equivalent, "p_worse": posterior.worse,
                     "observations": posterior.observations,
                     "decision": pair.decisions.get(d, posterior.decision(LEVEL))}
                )  # fmt: skip
    pair_table = Table(
        name="pairs",
        title="Representation learners in stage 1, against the same stage 2 on cross-entropy",
        caption=(
            f"Mean paired difference ({metric.short} points, i.e. × 100): P(better) / "
            "P(equivalent) / P(worse) from the Bayesian signed-rank test (baycomp), with a "
            f"region of practical equivalence of ±{comparison.rope:g} {metric.short} points; "
            "a decision needs a probability of 0.95. Per dataset the observations are its "
            "independent splits (train seeds averaged within a split), and the bracket is the "
            "95 % interval of the mean difference over them: Student's t where each split has "
            f"its own test set, {shared_interval(metric)} where splits share one"
            + (
                " (a decision there also needs the interval on its side of zero, or within "
                "the ROPE for equivalence)"
                if metric.key in BOOTSTRAPPED
                else ""
            )
            + "; no bracket with one split. Pooled: the mean differences of "
            f"{', '.join(comparison.pooled)}. Fewer than "
            f"{MIN_OBSERVATIONS} observations decide nothing (undecided)."
        ),
        header=pair_header,
        rows=pair_rows,
        numbers=pd.DataFrame(records),
        text_columns=3,
    )
    return [rank_table, pair_table]


def _approach_item(approach: str, tests: list[tuple[PairResult, str, Posterior]]) -> str:
    """One approach's item of the verdict's list: how many of its tests are undecided, then
    what the others decided, outcome by outcome (nested items)."""
    if not tests:
        return f"- {approach.capitalize()}: no dataset with enough splits to test."
    undecided = sum(pair.decisions[dataset] == "undecided" for pair, dataset, _ in tests)
    lines = [
        f"- {approach.capitalize()}: {undecided} of its {len(tests)} (pair, dataset) tests "
        "undecided."
    ]
    for outcome in OUTCOMES:
        found = [
            f"{pair.method} on {dataset} ({posterior.mean_difference:+.1f} points"
            + (f" {spread.text()}" if (spread := pair.intervals.get(dataset)) else "")
            + f", P = {getattr(posterior, outcome):.2f})"
            for pair, dataset, posterior in tests
            if pair.decisions[dataset] == outcome
        ]
        lines.append(f"    - {OUTCOMES[outcome]}: {'; '.join(found) if found else 'none'}.")
    return "\n".join(lines)


def verdict(comparison: Comparison) -> str:
    """The answer in plain words, never more than the statistics say: Markdown paragraphs
    (what is asked and how it is decided; the pooled test; how many tests the page makes;
    Friedman's test) and a list of what each approach's tests decided."""
    n = len(comparison.scores)
    lines = []
    splits = ", ".join(f"{s.name} {s.described()}" for s in comparison.scores)
    reference = "cross-entropy" if comparison.reference == "ce" else comparison.reference
    lines.append(
        f"Over {n} dataset(s) ({splits}), the question is whether a representation-learning "
        "stage 1 (supervised metric learning, long-tailed contrastive, self-supervised, "
        f"augmentation; each approach reported apart) beats {reference} under the same stage 2 "
        f"in test {comparison.metric.long}."
    )
    if comparison.apart:
        lines.append(
            f"{', '.join(comparison.apart)} (generated, or marked so in the study) is tested "
            "on its own but left out of the pooled test, the mean ranks and Friedman's test."
        )
    if shared := [s.name for s in comparison.scores if s.shared_test_set]:
        lines.append(
            f"The splits of {', '.join(shared)} share a test set (the source fixes it): there "
            f"the interval is {shared_interval(comparison.metric)}, and "
            + (
                "a decision stands only where that interval agrees with it."
                if comparison.metric.key in BOOTSTRAPPED
                else "the interval and the decisions there are surer than the data allow."
            )
        )
    if not comparison.pairs:
        lines.append(
            "No such pair was run on every dataset (e.g. supcon+crt with ce+crt), so there "
            "is no answer yet."
        )
    else:
        lines.append(
            f"A decision needs a probability of {LEVEL} on {MIN_OBSERVATIONS} or more "
            f"independent splits; within ±{comparison.rope:g} {comparison.metric.short} points "
            "counts as practically equivalent."
        )
    tests = [
        (pair, dataset, posterior)
        for pair in comparison.pairs
        for dataset, posterior in pair.per_dataset.items()
        if posterior is not None
    ]
    paragraphs = [" ".join(lines)]
    if comparison.pairs:
        paragraphs.append("What the tests of each approach decided, per (pair, dataset):")
        paragraphs.append(
            "\n".join(
                _approach_item(approach, [t for t in tests if t[0].approach == approach])
                for approach in dict.fromkeys(pair.approach for pair in comparison.pairs)
            )
        )
    pooled = [(pair, pair.pooled) for pair in comparison.pairs if pair.pooled is not None]
    if pooled:
        observations = len(comparison.pooled)  # one mean difference per pooled dataset
        listed = ", ".join(
            f"{pair.method} {p.better:.2f} / {p.worse:.2f} ({p.mean_difference:+.1f})"
            for pair, p in pooled
        )
        paragraphs.append(
            f"Pooled over the {observations} per-dataset mean differences "
            f"({', '.join(comparison.pooled)})"
            + (", too few datasets to decide" if observations < MIN_OBSERVATIONS else "")
            + f", P(better) / P(worse) (mean difference): {listed}."
        )
    paragraphs += _multiplicity(comparison, tests)
    f = comparison.friedman
    if f.p_value is None:
        paragraphs.append("The Friedman test needs three or more methods and two or more datasets.")
    elif not math.isfinite(f.p_value):
        paragraphs.append(
            "Every method ranks the same on every dataset: Friedman's test finds nothing."
        )
    else:
        power = (
            f"With only {len(comparison.pooled)} datasets this test has little power; the paired "
            "analyses over independent splits carry the evidence."
            if len(comparison.pooled) < 10
            else ""
        )
        paragraphs.append(
            f"Across all {comparison.means.shape[1]} methods, Friedman's test over the "
            f"{len(comparison.pooled)} pooled datasets gives p = {f.p_value:.3f} (Nemenyi's "
            "critical difference of mean ranks: "
            f"{f.critical_difference:.2f}"
            + (
                "; as p ≥ 0.05, the diagram's differences are not established"
                if f.p_value >= 0.05
                else ""
            )
            + f"). {power}".rstrip()
        )
    return "\n\n".join(paragraphs)


def _multiplicity(
    comparison: Comparison, tests: list[tuple[PairResult, str, Posterior]]
) -> list[str]:
    """How many tests the page makes, what that implies at the 0.95 threshold, and which
    decisions remain at the threshold corrected for them (Bonferroni: 1 − 0.05/n)."""
    n = comparison.tests()
    if n < 2:
        return []
    corrected = 1 - (1 - LEVEL) / n
    higher = comparison.metric.higher_is_better
    kept = [
        f"{pair.method} on {dataset} ({decision})"
        for pair, dataset, posterior in tests
        if (decision := decide(posterior, pair.intervals.get(dataset), comparison.rope, higher,
                               corrected)) != "undecided"
    ]  # fmt: skip
    kept += [
        f"{pair.method} pooled ({decision})"
        for pair in comparison.pairs
        if pair.pooled is not None and (decision := pair.pooled.decision(corrected)) != "undecided"
    ]
    bootstrapped = any(
        spread is not None and spread.kind == BOOTSTRAP
        for pair in comparison.pairs
        for spread in pair.intervals.values()
    )
    agreeing = (
        " (where splits share a test set, with the interval agreeing at that level: its mean "
        "± the t quantile at that level times its standard error)"
        if bootstrapped
        else ""
    )
    return [
        f"The page makes {n} tests; were no stage 1 different from its baseline, each could "
        f"still pass 0.95 by chance, so up to about {(1 - LEVEL) * n:.1f} of its decisions may "
        f"be chance. At the threshold corrected for {n} tests (1 − 0.05/{n} = {corrected:.4f})"
        f"{agreeing}, the decisions that remain: {'; '.join(kept) if kept else 'none'}."
    ]


def cd_diagram(comparison: Comparison, path: Path, pdf: bool) -> list[Path]:
    """The critical-difference diagram (scikit-posthocs): mean ranks, bars joining methods
    Nemenyi's test cannot tell apart."""
    figure = Figure(figsize=(8, 0.25 * comparison.means.shape[1] + 2), layout="constrained")
    axis = figure.subplots()
    f = comparison.friedman
    ranks = comparison.ranks.loc["mean rank"]
    if f.nemenyi is not None:
        posthocs.critical_difference_diagram(ranks, f.nemenyi, ax=axis)
        axis.set_title(f"Mean ranks over {len(comparison.pooled)} datasets (Nemenyi, α = 0.05)")
    else:
        axis.text(0.5, 0.5, "needs 3 methods and 2 datasets", ha="center", va="center")
        axis.set_axis_off()
    return save_figure(figure, path, pdf)


def pair_differences(comparison: Comparison, path: Path, pdf: bool) -> list[Path]:
    """Each pair's mean paired difference per dataset with the interval the pairs table gives
    (from the observations its test uses; a bare point with one split), on an axis spanning
    the data, the region of practical equivalence shaded."""
    rows = []
    for pair in comparison.pairs:
        for s in comparison.scores:
            spread = pair.intervals[s.name]
            mean = float(split_differences(s, pair.method, pair.baseline).mean())
            low, high = (spread.low, spread.high) if spread else (mean, mean)
            rows.append((f"{pair.method} − {pair.baseline}, {s.name}", mean, low, high))
    figure = Figure(figsize=(8, 0.3 * max(1, len(rows)) + 1.5), layout="constrained")
    axis = figure.subplots()
    if rows:
        y = np.arange(len(rows))
        for position, (_, mean, low, high) in zip(y, rows, strict=True):
            axis.plot([low, high], [position, position], color="#4c72b0", linewidth=2)
            axis.plot([mean], [position], "o", color="#4c72b0")
        axis.set_yticks(y, [row[0] for row in rows], fontsize=8)
        lows = [min(row[2], -comparison.rope) for row in rows]
        highs = [max(row[3], comparison.rope) for row in rows]
        axis.set_xlim(*data_span(lows, highs))
    axis.axvspan(-comparison.rope, comparison.rope, color="#999999", alpha=0.2, label="ROPE")
    axis.axvline(0, color="#555555", linewidth=0.8)
    axis.set_xlabel(
        f"paired difference in test {comparison.metric.short} (points): mean over splits and its "
        "95 % interval"
    )
    figure.legend(loc="outside lower center", fontsize=8)
    return save_figure(figure, path, pdf)


@dataclass(frozen=True)
class Section:
    """What a page adds after the comparison's own: a paragraph for the verdict and its
    tables (the tuning sensitivity of a study)."""

    text: str
    tables: list[Table]


def write_comparison(
    comparison: Comparison,
    results_dir: Path,
    pdf: bool = False,
    sections: tuple[Section, ...] = (),
) -> Path:
    """Write `results_dir/compare/` (swapped in whole), `sections` after the comparison's
    own verdict and tables; returns the folder."""
    final = results_dir / "compare"
    join(results_dir)  # this process's session; scratch folders of dead ones removed
    scratch = results_dir / f".compare@{SESSION}@{uuid.uuid4().hex[:6]}.partial"
    scratch.mkdir(parents=True)
    try:
        _write(comparison, scratch, pdf, sections)
        claim = try_claim(results_dir / "compare.claim")
        if claim is None:
            raise BenchError(f"another process is writing {final}; try again when it is done.")
        with claim:
            swap_in(scratch, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def _write(comparison: Comparison, scratch: Path, pdf: bool, sections: tuple[Section, ...]) -> None:
    written = tables(comparison) + [t for section in sections for t in section.tables]
    for table in written:
        write_text_atomic(scratch / f"{table.name}.md", render.markdown(table))
        write_text_atomic(scratch / f"{table.name}.csv", render.csv(table))
        write_text_atomic(scratch / f"{table.name}.tex", render.latex(table))
    text = "\n\n".join([verdict(comparison), *(section.text for section in sections)])
    write_text_atomic(scratch / "verdict.md", f"# Verdict\n\n{text}\n")
    figures = [
        (cd_diagram(comparison, scratch / "cd_diagram.png", pdf)[0],
         "Critical-difference diagram: mean rank of each method over the datasets; methods "
         "joined by a bar are not told apart by Nemenyi's test at α = 0.05."),
        (pair_differences(comparison, scratch / "pairs.png", pdf)[0],
         f"Paired differences per dataset (representation-learning stage 1 minus "
         f"{comparison.reference} stage 1, same stage 2): the mean over splits and the interval "
         "the pairs table gives, from the observations its test uses (Student's t over splits "
         f"with their own test sets; {shared_interval(comparison.metric)} where they share "
         f"one; a bare point with one split); shaded: ±{comparison.rope:g} points."),
    ]  # fmt: skip
    html = page("Comparison over datasets", text, written, figures)
    write_text_atomic(scratch / "index.html", html)
