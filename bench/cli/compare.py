"""`bench compare`: one comparison over datasets: ranks, tests, the metric-learning verdict."""

from __future__ import annotations

import argparse

from bench.cli import options
from bench.components.scalars import SCALARS
from bench.core.validation import finite_float


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
        "--datasets",
        help="comma-separated dataset names (default: every named dataset with runs)",
    )
    parser.add_argument(
        "--methods", help="methods or lists to compare (default: those run on every dataset)"
    )
    parser.add_argument(
        "--metric",
        choices=list(SCALARS),
        default="balanced_accuracy",
        help="the test metric to rank and test on (default: balanced_accuracy); qwk only on "
        "ordinal tasks, ece ranked lowest first. Runs recorded before a metric existed lack it: "
        "compare then names them and stops",
    )
    parser.add_argument(
        "--rope",
        type=finite_float,
        default=1.0,
        help="region of practical equivalence, ± points of --metric as the tables show it "
        "(× 100: 1 point is 1 percentage point of BAcc, 0.01 of AUROC or kappa; default: 1)",
    )
    parser.add_argument("--pdf", action="store_true", help="also write each figure as PDF")
    options.add_settings(parser, "The runs compared are those made at these settings.")
    options.add_results_dir(parser)
    options.add_cache_dir(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Compare, write the page and print the verdict."""
    from bench.compare.build import analyse, verdict, write_comparison
    from bench.compare.collect import collect, datasets_with_runs, finished_runs
    from bench.core.errors import BenchError
    from bench.core.files import ensure_writable
    from bench.core.layout import default_results_dir
    from bench.data.specs import get_spec
    from bench.recipes.methods import MethodRegistry

    results_dir = args.results_dir or default_results_dir()
    registry = MethodRegistry()
    if args.datasets:
        datasets = [get_spec(name.strip()).name for name in args.datasets.split(",")]
    else:
        datasets = datasets_with_runs(results_dir)
    if not datasets:
        raise BenchError(f"no dataset has runs in {results_dir}; run some (bench run) first.")
    if not args.rope > 0:
        raise BenchError(f"--rope must be a positive number of points, got {args.rope}.")
    methods = [m.name for m in registry.expand(args.methods)] if args.methods else None
    ensure_writable(results_dir, "the results folder", "choose it with --results-dir")
    runs = finished_runs(
        results_dir, datasets, registry, options.conditions(args), skip_stale=not args.datasets
    )
    scores = collect(results_dir, runs, methods, args.metric)
    comparison = analyse(scores, registry, args.rope)
    folder = write_comparison(comparison, results_dir, args.pdf)
    print(verdict(comparison))
    print(f"comparison: {folder}; open {folder / 'index.html'}")
    return 0
