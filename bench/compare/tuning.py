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

from bench.compare.build import Comparison, Section, posterior_text
from bench.compare.collect import DatasetScores, scores_of
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


def choose(
    name: str,
    archive: DatasetArchive,
    methods: list[str],
    grids: dict[str, list[str]],
    metric: str,
    pooled: bool,
) -> tuple[DatasetScores, DatasetScores, pd.DataFrame, pd.DataFrame]:
    """The scores of `methods` on dataset `name` over the blocks where every variant ran: as
    run, and with each method of `grids` replaced, block by block, by its variant of best
    validation balanced accuracy; which variant each block took; and each variant's mean
    validation and test score."""
    every = list(dict.fromkeys([*methods, *(v for names in grids.values() for v in names)]))
    test = scores_of({name: archive}, every, metric, {name: pooled})[0]
    validation = scores_of({name: archive}, every, VALIDATION, {name: pooled})[0].blocks
    validation = validation.reindex(test.blocks.index)
    blocks = test.blocks[methods].copy()
    predicted = dict(test.predicted or {})
    chosen = pd.DataFrame(index=test.blocks.index)
    rows: list[dict[str, object]] = []
    for method, variants in grids.items():
        best = validation[variants].idxmax(axis=1)  # the first maximum: grid order breaks ties
        chosen[method] = best
        picked = [variants.index(str(variant)) for variant in best]
        blocks[method] = test.blocks[variants].to_numpy()[np.arange(len(best)), picked]
        for (split, seed), variant in zip(best.index, best.astype(str), strict=True):
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


def section(found: Sensitivity) -> Section:
    """The verdict paragraph and the two tables of the tuning sensitivity: the pairs a tuned
    method enters, at the recipes' values and chosen on validation, and the variants."""
    dataset = found.scores.name
    short = found.tuned.metric.short
    touched = [
        (at_defaults, chosen)
        for at_defaults, chosen in zip(found.at_defaults.pairs, found.tuned.pairs, strict=True)
        if at_defaults.method in found.grids or at_defaults.baseline in found.grids
    ]
    rows, records, changed = [], [], []
    for at_defaults, chosen in touched:
        before = at_defaults.decisions.get(dataset, "undecided")
        after = chosen.decisions.get(dataset, "undecided")
        rows.append(
            [
                at_defaults.approach,
                at_defaults.method,
                at_defaults.baseline,
                posterior_text(
                    at_defaults.per_dataset[dataset], at_defaults.intervals[dataset], before
                ),
                posterior_text(chosen.per_dataset[dataset], chosen.intervals[dataset], after),
            ]
        )
        for label, pair, decision in (("defaults", at_defaults, before), ("chosen", chosen, after)):
            posterior, spread = pair.per_dataset[dataset], pair.intervals[dataset]
            records.append(
                {"values": label, "method": pair.method, "against": pair.baseline,
                 "mean_difference": posterior.mean_difference if posterior else None,
                 "ci_low": spread.low if spread else None,
                 "ci_high": spread.high if spread else None,
                 "p_better": posterior.better if posterior else None,
                 "p_worse": posterior.worse if posterior else None,
                 "decision": decision}
            )  # fmt: skip
        if before != after:
            changed.append(f"{at_defaults.method} ({before} → {after})")
    pairs = Table(
        name="tuning",
        title=f"Tuning sensitivity on {dataset}: the pairs at the recipes' values and chosen "
        "on validation",
        caption=(
            f"As the pairs table ({short} points; P(better) / P(equivalent) / P(worse), the "
            "95 % interval), for every pair with a tuned method, once at the recipes' own values "
            "and once with each tuned method taking, on each split, the variant of its grid with "
            "the best validation balanced accuracy after stage 2."
        ),
        header=["Approach", "Method", "Against", "At the recipes' values", "Chosen on validation"],
        rows=rows,
        numbers=pd.DataFrame(records),
        text_columns=3,
    )
    variants = found.variants
    variant_rows = [
        [str(row["method"]), str(row["variant"]), str(row["chosen"]),
         f"{row['validation']:.1f}", f"{row['test']:.1f}"]
        for row in variants.to_dict("records")
    ]  # fmt: skip
    splits = len(found.chosen)
    table = Table(
        name="tuning_variants",
        title=f"The variants on {dataset} and how often each was chosen",
        caption=(
            f"Each tuned method's variants: in how many of the {splits} blocks validation chose "
            f"it, and its mean validation balanced accuracy and test {short} (× 100)."
        ),
        header=["Method", "Variant", "Chosen", "Validation BAcc", f"Test {short}"],
        rows=variant_rows,
        numbers=variants,
        text_columns=2,
    )
    grids = "; ".join(f"{method}: {', '.join(names)}" for method, names in found.grids.items())
    text = (
        f"Tuning sensitivity on {dataset} ({found.scores.described()}): each tuned method "
        "takes, on each split, the variant of its grid with the best validation balanced "
        f"accuracy after stage 2, never a test score ({grids}). Of the {len(touched)} pairs a "
        "tuned method enters, "
        + (
            f"{len(changed)} change their decision: {'; '.join(changed)}."
            if changed
            else "none changes its decision."
        )
        + " These tests repeat the page's on other scores and are not counted among its tests."
    )
    return Section(text, [pairs, table])
