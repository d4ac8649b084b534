"""Assembling `results/<dataset>/report/`: every table in three formats, every figure, and
`index.html`; written beside the old report and swapped in whole."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.core.claims import join, wait_for_claim
from bench.core.errors import unknown_name
from bench.core.files import SESSION, write_text_atomic
from bench.recipes.methods import FAMILIES
from bench.report import page, plots, render
from bench.report.collect import Results
from bench.report.tables import (
    Table,
    default_reference,
    main_table,
    outliers_table,
    per_class_table,
    significance_table,
)
from bench.stage1.artefacts import ArtefactCache

MAX_PLOTTED = 4


@dataclass(frozen=True)
class Report:
    """Where the report went, the files in it, and what could not be drawn (and why)."""

    folder: Path
    files: list[Path]
    notes: list[str]


def plotted_methods(results: Results, reference: str) -> list[str]:
    """Cross-entropy, the reference, then the best method of each family by validation
    balanced accuracy; at most MAX_PLOTTED."""
    scores = results.runs.groupby("label")["val_balanced_accuracy"].mean().dropna()
    ce = [lab for lab in results.labels if results.of(lab)["method"].iloc[0] == "ce"]
    chosen = [*ce[:1], reference]
    for family in FAMILIES:
        members = [lab for lab in scores.index if results.of(lab)["family"].iloc[0] == family]
        if members:
            chosen.append(str(scores[members].idxmax()))
    return list(dict.fromkeys(chosen))[:MAX_PLOTTED]


def build_report(
    results: Results,
    *,
    cache_dir: Path,
    reference: str | None = None,
    plot_methods: list[str] | None = None,
    pdf: bool = False,
) -> Report:
    """Write the report of `results` (`bench.report.collect.load_results`) and return what was
    written; the embedding plot reads stage-1 artefacts from the cache at `cache_dir`."""
    tables = [main_table(results), outliers_table(results), per_class_table(results)]
    notes = [f"no finished runs for {m}; left out" for m in results.missing]
    if results.other_settings:
        notes.append(
            f"{results.other_settings} finished run(s) made at other settings (or before "
            "settings were recorded) are left out (`bench report --all-settings` shows them)"
        )
    if len(results.labels) > 1:
        tables.append(significance_table(results, reference))
    reference = reference or default_reference(results)
    chosen = plot_methods or plotted_methods(results, reference)
    for label in chosen:
        if label not in results.labels:
            raise unknown_name("method to plot (no finished runs)", label, results.labels)

    final = results.folder / "report"
    join(results.folder)  # removes the scratch folders of reports whose process died
    scratch = results.folder / f".report@{SESSION}@{uuid.uuid4().hex[:8]}.partial"
    scratch.mkdir(parents=True)
    try:
        figures = Figures(chosen, ArtefactCache(cache_dir), pdf)
        notes = _write(results, tables, reference, figures, notes, scratch)
        claim, _ = wait_for_claim(results.folder / "report.claim", lambda: None)
        assert claim is not None
        with claim:
            swap_in(scratch, final)
            files = sorted(final.iterdir())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # left only when the build failed
    return Report(final, files, notes)


@dataclass(frozen=True)
class Figures:
    """What the figures draw: the methods plotted, the cache holding the stage-1 artefacts
    embedded, and whether each figure gets a PDF beside its PNG."""

    methods: list[str]
    cache: ArtefactCache
    pdf: bool


def _write(
    results: Results,
    tables: list[Table],
    reference: str,
    figures_of: Figures,
    notes: list[str],
    scratch: Path,
) -> list[str]:
    """Every table, figure and the page into `scratch`; returns the notes, with any the
    figures added."""
    notes = list(notes)
    chosen, pdf = figures_of.methods, figures_of.pdf
    dataset = results.dataset
    for table in tables:
        write_text_atomic(scratch / f"{table.name}.md", render.markdown(table))
        write_text_atomic(scratch / f"{table.name}.csv", render.csv(table))
        write_text_atomic(scratch / f"{table.name}.tex", render.latex(table))
    shown = ", ".join(chosen)
    figures = [
        (
            plots.balanced_accuracy_intervals(results, scratch / "balanced_accuracy.png", pdf),
            "Test balanced accuracy per method, best at the top: mean (dot) and 95 % "
            "t-interval over seeds (line; n runs), coloured by family. The axis spans the "
            "data, not 0 to 100.",
        ),
        (
            plots.recall_against_frequency(
                results, chosen, scratch / "recall_vs_frequency.png", pdf
            ),
            f"Per-class test recall, classes from the rarest to the most frequent with their "
            f"training counts ({shown}).",
        ),
        (
            plots.confusion_matrices(results, chosen, scratch / "confusion.png", pdf),
            f"Test confusion matrices normalised by true class, seeds summed ({shown}).",
        ),
        (
            plots.reliability_diagram(results, chosen, scratch / "reliability.png", pdf),
            f"Reliability diagram, 15 bins, test predictions of all seeds ({shown}).",
        ),
    ]
    embedded, missing = plots.stage1_embeddings(
        results, scratch / "embeddings.png", figures_of.cache, pdf
    )
    if embedded:
        figures.append(
            (
                embedded,
                "t-SNE of stage-1 test features (first seed) for cross-entropy and each "
                "metric-learning stage 1, coloured by class.",
            )
        )
    if missing:
        notes.append(
            f"embedding plot: stage-1 artefacts of {', '.join(missing)} are no longer cached "
            "(rerun those methods to draw them)"
        )
    intro = (
        f"{dataset}: {len(results.runs)} finished runs of {len(results.labels)} methods. "
        f"Significance reference: {reference}. " + (" ".join(f"Note: {n}." for n in notes))
    )
    html = page.page(
        f"medlt-bench report: {dataset}",
        intro,
        tables,
        [(paths[0], caption) for paths, caption in figures],
    )
    write_text_atomic(scratch / "index.html", html)
    return notes


def swap_in(new: Path, final: Path) -> None:
    """Put the folder `new` in the place of `final` (callers hold the report's claim). The old
    report is renamed aside first and removed last; a swap killed in between is completed by
    the next one, which first puts that old report back: a whole report is never lost."""
    previous = final.with_name(f".{final.name}.previous")
    if previous.exists() and not final.exists():  # a swap was killed: the last good report
        os.replace(previous, final)
    shutil.rmtree(previous, ignore_errors=True)
    if final.exists():
        os.replace(final, previous)
    os.replace(new, final)
    shutil.rmtree(previous, ignore_errors=True)
