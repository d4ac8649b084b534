"""How sensitive a study's verdict is to tuning (its `[tuning]` table).

On the tuning dataset every method of a grid also ran at each of its variants. Here each
block (split, train seed) takes, for each tuned method, the variant with the best validation
balanced accuracy after stage 2 (ties: the first in grid order; test labels are never read to
choose), and the pairs are tested again on those scores, beside the verdict at the recipes'
own values. Each tuned method gets the same budget: one choice among its grid per split.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.compare.build import Comparison, PairResult, Section, analyse, posterior_text
from bench.compare.collect import DatasetScores, scores_of
from bench.recipes.methods import MethodRegistry
from bench.report.tables import Table
from bench.results.archive import DatasetArchive

VALIDATION = "val_balanced_accuracy"  # what a split's choice is made on, after stage 2


@dataclass(frozen=True)
class Sensitivity:
    """The tuning dataset's scores with each tuned method at its chosen variant per block
    (`scores`), which variant that was (`chosen`: a column per tuned method), each variant's
    mean validation and test score (`variants`), and the pairs tested at the recipes' values
    and on the chosen scores, over the same blocks (those where every variant ran)."""

    scores: DatasetScores
    grids: dict[str, list[str]]
    chosen: pd.DataFrame
    variants: pd.DataFrame
    at_defaults: Comparison
    tuned: Comparison


@dataclass(frozen=True)
class TuningAsked:
    """What a study's `[tuning]` table asks of its comparison: the dataset tuned on, each tuned
    method's variants in grid order, the study's methods and reference, and the command that
    runs what is missing."""

    dataset: str
    grids: dict[str, list[str]]
    methods: list[str]
    reference: str
    run_command: str


def sensitivity_section(
    asked: TuningAsked,
    archives: dict[str, DatasetArchive],
    scores: list[DatasetScores],
    registry: MethodRegistry,
    metric: str,
    rope: float,
) -> Section | None:
    """The page's section on a study's tuning sensitivity, from the runs in `archives` (by
    dataset; `scores`, the study's methods on them, say whether each is pooled): None when
    the tuning dataset is not compared, a note while a variant has no finished run."""
    name, grids = asked.dataset, asked.grids
    if name not in archives:
        return None
    if missing := missing_variants(archives[name], grids):
        return Section(
            f"Tuning sensitivity on {name}: not compared yet; {len(missing)} variant(s) of "
            f"its grids have no finished run (first {missing[0]}); `{asked.run_command}` runs "
            "them.",
            [],
        )
    pooled = next(s.pooled for s in scores if s.name == name)
    as_run, tuned, chosen, variants = choose(
        name, archives[name], asked.methods, grids, metric, pooled
    )
    found = Sensitivity(
        tuned,
        grids,
        chosen,
        variants,
        analyse([as_run], registry, rope, asked.reference),
        analyse([tuned], registry, rope, asked.reference),
    )
    return section(found)


def missing_variants(archive: DatasetArchive, grids: dict[str, list[str]]) -> list[str]:
    """The variants of `grids` without a finished run in `archive`."""
    ran = set(archive.runs["method"])
    return [v for variants in grids.values() for v in variants if v not in ran]


def choose(
    name: str,
    archive: DatasetArchive,
    methods: list[str],
    grids: dict[str, list[str]],
    metric: str,
    pooled: bool,
) -> tuple[DatasetScores, DatasetScores, pd.DataFrame, pd.DataFrame]:
    """The scores of `methods` on dataset `name` over the blocks where every variant ran: as
    run, and with each method of `grids` replaced on each split by its variant of best
    validation balanced accuracy (the mean over the split's train seeds); which variant each
    block took; and each variant's mean validation and test score."""
    every = list(dict.fromkeys([*methods, *(v for names in grids.values() for v in names)]))
    test = scores_of({name: archive}, every, metric, {name: pooled})[0]
    validation = scores_of({name: archive}, every, VALIDATION, {name: pooled})[0].blocks
    validation = validation.reindex(test.blocks.index)
    per_split = validation.groupby(level="split").mean()
    splits = test.blocks.index.get_level_values("split")
    blocks = test.blocks[methods].copy()
    predicted = dict(test.predicted or {})
    chosen = pd.DataFrame(index=test.blocks.index)
    rows: list[dict[str, object]] = []
    for method, variants in grids.items():
        # The first maximum: grid order breaks ties.
        best = per_split[variants].idxmax(axis=1).reindex(splits).astype(str)
        best.index = test.blocks.index
        chosen[method] = best
        picked = [variants.index(variant) for variant in best]
        blocks[method] = test.blocks[variants].to_numpy()[np.arange(len(best)), picked]
        for (split, seed), variant in zip(best.index, best, strict=True):
            predicted[(str(split), int(seed), method)] = predicted[(str(split), int(seed), variant)]
        for variant in variants:
            rows.append(
                {
                    "method": method,
                    "variant": variant,
                    "chosen": int((best == variant).sum()),
                    "validation": float(validation[variant].mean()),
                    "test": float(test.blocks[variant].mean()),
                }
            )
    as_run = dataclasses.replace(test, blocks=test.blocks[methods])
    predicted = {key: labels for key, labels in predicted.items() if key[2] in methods}
    scores = dataclasses.replace(test, blocks=blocks, predicted=predicted)
    return as_run, scores, chosen, pd.DataFrame(rows)


def _tuned_side(pair: PairResult, grids: dict[str, list[str]]) -> str:
    """Which side of `pair` was tuned: both, the learner or the baseline alone."""
    learner, baseline = pair.method in grids, pair.baseline in grids
    return "both" if learner and baseline else "learner" if learner else "baseline"


def section(found: Sensitivity) -> Section:
    """The verdict paragraph and the two tables of the tuning sensitivity: the pairs a tuned
    method enters, at the recipes' values and chosen on validation, and the variants."""
    dataset = found.scores.name
    touched = [
        (at_defaults, chosen, _tuned_side(at_defaults, found.grids))
        for at_defaults, chosen in zip(found.at_defaults.pairs, found.tuned.pairs, strict=True)
        if at_defaults.method in found.grids or at_defaults.baseline in found.grids
    ]
    rows, records = [], []
    changed: dict[str, list[str]] = {"both": [], "learner": [], "baseline": []}
    for at_defaults, chosen, side in touched:
        decisions = []
        for label, pair in (("defaults", at_defaults), ("chosen", chosen)):
            posterior, spread = pair.per_dataset[dataset], pair.intervals[dataset]
            decisions.append(pair.decisions.get(dataset, "undecided"))
            records.append(
                {"values": label, "method": pair.method, "against": pair.baseline,
                 "tuned": side,
                 "mean_difference": posterior.mean_difference if posterior else None,
                 "ci_low": spread.low if spread else None,
                 "ci_high": spread.high if spread else None,
                 "p_better": posterior.better if posterior else None,
                 "p_worse": posterior.worse if posterior else None,
                 "decision": decisions[-1]}
            )  # fmt: skip
        rows.append(
            [at_defaults.approach, at_defaults.method, at_defaults.baseline, side]
            + [
                posterior_text(pair.per_dataset[dataset], pair.intervals[dataset], decision)
                for pair, decision in zip((at_defaults, chosen), decisions, strict=True)
            ]
        )
        if decisions[0] != decisions[1]:
            changed[side].append(f"{at_defaults.method} ({decisions[0]} → {decisions[1]})")
    short = found.tuned.metric.short
    pairs = Table(
        name="tuning",
        title=f"Tuning sensitivity on {dataset}: the pairs at the recipes' values and chosen "
        "on validation",
        caption=(
            f"As the pairs table ({short} points; P(better) / P(equivalent) / P(worse), the "
            "95 % interval), for every pair with a tuned method, once at the recipes' own values "
            "and once with each tuned method taking, on each split, the variant of its grid with "
            "the best validation balanced accuracy after stage 2. Tuned: both sides, or one "
            "side alone (a one-sided comparison, shown for reference)."
        ),
        header=[
            "Approach", "Method", "Against", "Tuned", "At the recipes' values",
            "Chosen on validation",
        ],
        rows=rows,
        numbers=pd.DataFrame(records),
        text_columns=4,
    )  # fmt: skip
    return Section(_paragraph(found, touched, changed), [pairs, _variants_table(found)])


def _variants_table(found: Sensitivity) -> Table:
    """Each variant: how often validation chose it, its mean validation and test score."""
    variants, short = found.variants, found.tuned.metric.short
    rows = [
        [str(row["method"]), str(row["variant"]), str(row["chosen"]),
         f"{row['validation']:.1f}", f"{row['test']:.1f}"]
        for row in variants.to_dict("records")
    ]  # fmt: skip
    return Table(
        name="tuning_variants",
        title=f"The variants on {found.scores.name} and how often each was chosen",
        caption=(
            f"Each tuned method's variants: in how many of the {len(found.chosen)} blocks "
            "validation chose it, and its mean validation balanced accuracy and test "
            f"{short} (× 100)."
        ),
        header=["Method", "Variant", "Chosen", "Validation BAcc", f"Test {short}"],
        rows=rows,
        numbers=variants,
        text_columns=2,
    )


def _paragraph(
    found: Sensitivity,
    touched: list[tuple[PairResult, PairResult, str]],
    changed: dict[str, list[str]],
) -> str:
    """The verdict's paragraph: the protocol, then the decisions that changed, the pairs
    with both sides tuned apart from the one-sided ones."""
    grids = "; ".join(f"{method}: {', '.join(names)}" for method, names in found.grids.items())
    text = (
        f"Tuning sensitivity on {found.scores.name} ({found.scores.described()}): each tuned "
        "method takes, on each split, the variant of its grid with the best validation balanced "
        f"accuracy after stage 2, never a test score ({grids})."
    )
    for side, what in (
        ("both", "with both sides tuned"),
        ("baseline", "with the baseline alone tuned (one-sided, against the learner)"),
        ("learner", "with the learner alone tuned (one-sided, in its favour)"),
    ):
        count = sum(found_side == side for _, _, found_side in touched)
        if count:
            listed = changed[side]
            text += f" Of the {count} pair(s) {what}, " + (
                f"{len(listed)} change their decision: {'; '.join(listed)}."
                if listed
                else "none changes its decision."
            )
    return (
        text + " These tests repeat the page's on other scores and are not counted among its tests."
    )
