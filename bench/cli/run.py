"""`bench run`: train and evaluate methods over seeds, then print the summary table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.cli import options


def add_parser(commands: argparse._SubParsersAction) -> None:
    """`bench run` and its options."""
    parser = commands.add_parser(
        "run",
        help="train and evaluate methods over seeds",
        description="Train and evaluate every (method, seed) not yet in "
        "results/, then print the summary table.",
    )
    parser.add_argument(
        "--methods", default="all", help="comma-separated method names or lists (default: all)"
    )
    parser.add_argument("--dataset", default="synthetic", help="dataset name (default: synthetic)")
    parser.add_argument(
        "--seeds",
        type=options.seeds,
        default=(0, 1, 2),
        help="training seeds: initialisation, sampling, augmentation (default: 0,1,2)",
    )
    parser.add_argument(
        "--data-seeds", type=options.seeds, default=(0,), help="split seeds (default: 0)"
    )
    options.add_imbalance(parser)
    options.add_settings(parser, "Recorded in run.json and part of the run id.")
    options.add_training_place(parser)
    options.add_executor(parser, "a job is a stage 1 and every run that shares it")
    options.add_results_dir(parser)
    parser.add_argument(
        "--data-root",
        type=Path,
        help="folder holding the dataset (else $BENCH_DATA_ROOT, then the cache)",
    )
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out unreadable images instead of stopping (each one is listed in run.json)",
    )
    options.add_cache_dir(parser)
    parser.add_argument(
        "--no-report", action="store_true", help="skip refreshing the report at the end"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run what is missing; 1 when a run failed."""
    from bench.report.summary import outlier_lines, printed_table
    from bench.run.runner import RunOptions, run_benchmark

    outcome = run_benchmark(
        RunOptions(
            dataset=args.dataset,
            methods=args.methods,
            seeds=args.seeds,
            data_seeds=args.data_seeds,
            conditions=options.conditions(args),
            results_dir=args.results_dir,
            report=not args.no_report,
            progress=not args.no_progress,
        ),
        options.execution(args),
    )
    if outcome.results is None:
        print("no run asked for has finished.")
    else:
        print(printed_table(outcome.results))
        for line in outlier_lines(outcome.results):
            print(line)
    if not outcome.failures:
        return 0
    print(
        f"bench: {len(outcome.failures)} of {outcome.asked} run(s) failed, first "
        f"{outcome.failures[0]}; `bench status --dataset {args.dataset}` lists the failed runs "
        "and jobs, with their logs.",
        file=sys.stderr,
    )
    return 1
