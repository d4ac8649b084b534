"""`bench compare`: one comparison over datasets: ranks, tests, the metric-learning verdict."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cli import options
from bench.components.scalars import SCALARS
from bench.core.errors import BenchError
from bench.core.validation import finite_float

if TYPE_CHECKING:
    from bench.compare.build import Section
    from bench.compare.collect import DatasetScores
    from bench.recipes.methods import MethodRegistry
    from bench.results.archive import DatasetArchive


def add_parser(commands: argparse._SubParsersAction) -> None:
    """`bench compare` and its options."""
    parser = commands.add_parser(
        "compare",
        help="one comparison over datasets: ranks, tests, the metric-learning verdict",
        description="Compare methods over several datasets (their runs at the current "
        "settings): mean ranks, Friedman and Nemenyi with a critical-difference diagram, and "
        "for each metric-learning stage 1 the Bayesian signed-rank test against the same "
        "stage 2 on cross-entropy; writes results/compare/.",
    )
    parser.add_argument(
        "--study",
        type=Path,
        help="compare exactly what a study file names (its datasets at their settings, methods, "
        "seeds, reference, ROPE and metric), from the results folder and, for runs it lacks, "
        "the study's committed archive",
    )
    parser.add_argument(
        "--prefer",
        choices=("kept", "incoming"),
        help="with --study, when a run is in the archive and the results folder with other "
        "numbers from another machine or thread count: use the archive's (kept) or the results "
        "folder's (incoming); default: stop and list them",
    )
    parser.add_argument(
        "--datasets",
        help="comma-separated dataset names (default: every named dataset with runs; with "
        "--study, a part of the study's)",
    )
    parser.add_argument(
        "--methods", help="methods or lists to compare (default: those run on every dataset)"
    )
    parser.add_argument(
        "--metric",
        choices=list(SCALARS),
        help="the test metric to rank and test on (default: the study's, else "
        "balanced_accuracy); qwk only on "
        "ordinal tasks, ece ranked lowest first. Runs recorded before a metric existed lack it: "
        "compare then names them and stops",
    )
    parser.add_argument(
        "--rope",
        type=finite_float,
        help="region of practical equivalence, ± points of --metric as the tables show it "
        "(× 100: 1 point is 1 percentage point of BAcc, 0.01 of AUROC or kappa; default: the "
        "study's, else 1)",
    )
    parser.add_argument("--pdf", action="store_true", help="also write each figure as PDF")
    options.add_imbalance(parser)
    options.add_settings(parser, "The runs compared are those made at these settings.")
    options.add_results_dir(parser)
    options.add_cache_dir(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Compare, write the page and print the verdict."""
    from bench.compare.build import analyse, verdict, write_comparison
    from bench.compare.metric_ranks import metrics_section
    from bench.core.files import ensure_writable
    from bench.core.layout import default_results_dir
    from bench.recipes.methods import MethodRegistry

    results_dir = args.results_dir or default_results_dir()
    registry = MethodRegistry()
    sections: tuple[Section, ...] = ()
    if args.study:
        archives, scores, rope, reference, sections = _study_scores(args, results_dir, registry)
    else:
        archives, scores = _results_scores(args, results_dir, registry)
        rope, reference = args.rope, "ce"
    if not rope > 0:
        raise BenchError(f"--rope must be a positive number of points, got {rope}.")
    ensure_writable(results_dir, "the results folder", "choose it with --results-dir")
    comparison = analyse(scores, registry, rope, reference)
    sections = (metrics_section(archives, comparison), *sections)
    folder = write_comparison(comparison, results_dir, args.pdf, sections)
    print("\n\n".join([verdict(comparison), *(section.text for section in sections)]))
    print(f"comparison: {folder}; open {folder / 'index.html'}")
    return 0


def _study_scores(
    args: argparse.Namespace, results_dir: Path, registry: MethodRegistry
) -> tuple[dict[str, DatasetArchive], list[DatasetScores], float, str, tuple[Section, ...]]:
    """The runs (by dataset) and scores of exactly what `--study` names, its ROPE and
    reference, and the section of its tuning sensitivity when it has one and its dataset is
    compared."""
    from bench.compare.collect import scores_of
    from bench.compare.tuning import TuningAsked, sensitivity_section
    from bench.study.file import load_study
    from bench.study.grid import study_runs

    if args.methods:
        raise BenchError("--study names the methods; leave out --methods.")
    if given := options.conditions(args).given():
        flag = "--" + next(iter(given)).replace("_", "-")
        raise BenchError(
            f"--study gives each dataset its settings; leave out {flag} (or change the study)."
        )
    if args.profile:
        raise BenchError("--study gives each dataset its profile; leave out --profile.")
    if args.imbalance is not None:
        raise BenchError("--study gives each dataset its imbalance; leave out --imbalance.")
    study = load_study(args.study, registry)
    datasets = list(study.datasets)
    if args.datasets:  # a part of the study, e.g. while it is being built
        datasets = [study.dataset(name.strip()) for name in args.datasets.split(",")]
    archives = {d.name: study_runs(study, d, results_dir, registry, args.prefer) for d in datasets}
    if empty := [name for name, archive in archives.items() if archive.runs.empty]:
        raise BenchError(
            f"study {study.name}: no finished run of {', '.join(empty)} in {results_dir} or "
            f"{study.archive}; `bench study status {args.study}` says what is missing."
        )
    methods = [m.name for m in study.method_list(registry)]
    pooled = {d.name: d.pooled for d in datasets if d.pooled is not None}
    metric = args.metric or study.metric
    scores = scores_of(archives, methods, metric, pooled)
    rope = args.rope if args.rope is not None else study.rope
    if study.tuning is None:
        return archives, scores, rope, study.reference, ()
    asked = TuningAsked(
        study.tuning.dataset,
        study.tuning.variants(registry),
        methods,
        study.reference,
        f"bench study run {args.study} --datasets {study.tuning.dataset}",
    )
    found = sensitivity_section(asked, archives, scores, registry, metric, rope)
    return archives, scores, rope, study.reference, (found,) if found else ()


def _results_scores(
    args: argparse.Namespace, results_dir: Path, registry: MethodRegistry
) -> tuple[dict[str, DatasetArchive], list[DatasetScores]]:
    """The results folder's runs at the current settings (by dataset) and their scores."""
    from bench.compare.collect import (
        datasets_with_runs,
        finished_runs,
        results_archives,
        scores_of,
    )
    from bench.data.specs import get_spec

    if args.prefer:
        raise BenchError("--prefer applies to --study (archive and results folder); leave it out.")
    if args.rope is None:
        args.rope = 1.0
    if args.datasets:
        datasets = [get_spec(name.strip()).name for name in args.datasets.split(",")]
    else:
        datasets = datasets_with_runs(results_dir)
    if not datasets:
        raise BenchError(f"no dataset has runs in {results_dir}; run some (bench run) first.")
    methods = [m.name for m in registry.expand(args.methods)] if args.methods else None
    runs = finished_runs(
        results_dir, datasets, registry, options.conditions(args), skip_stale=not args.datasets
    )
    archives = results_archives(results_dir, runs)
    return archives, scores_of(archives, methods, args.metric or "balanced_accuracy")
