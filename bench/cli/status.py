"""`bench status`: what is done, running, pending and failed, and where the logs are."""

from __future__ import annotations

import argparse

from bench.cli import options


def add_parser(commands: argparse._SubParsersAction) -> None:
    """`bench status` and its options."""
    parser = commands.add_parser(
        "status",
        help="what is done, running, pending and failed, and where the logs are",
        description="The runs recorded for a dataset and the jobs submitted for it (local "
        "workers and SLURM), with each failed job's error and log.",
    )
    parser.add_argument("--dataset", default="synthetic", help="dataset name (default: synthetic)")
    options.add_results_dir(parser)
    parser.add_argument(
        "--finalize",
        action="store_true",
        help="write runs.csv, the summary and the report from the runs recorded (what an "
        "interrupted `bench run` left undone)",
    )
    options.add_imbalance(parser)
    options.add_settings(parser, "--finalize tabulates the runs made at these settings.")
    options.add_cache_dir(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the state of the runs and jobs; with --finalize, write the tables."""
    from bench.core.errors import BenchError
    from bench.core.files import ensure_writable
    from bench.recipes.methods import MethodRegistry
    from bench.results.store import ResultsStore
    from bench.run.runner import finalize
    from bench.run.status import describe

    results_dir, spec, name = options.results_of(args)
    store = ResultsStore(results_dir, name)
    if not store.root.is_dir():
        raise BenchError(
            f"no results for {name!r} in {results_dir} (choose it with --results-dir)."
        )
    if args.profile:  # checked even when only --finalize reads it: a typo is never silent
        if spec is None:
            raise BenchError(f"--profile {args.profile}: no dataset spec named {name!r}.")
        spec.training_for(args.profile)
    text, active = describe(store)
    print(text)
    if args.finalize:
        if spec is None:
            raise BenchError(f"no dataset spec named {name!r}: use `bench report` instead.")
        ensure_writable(store.root, "the results folder", "choose it with --results-dir")
        if active:
            print("note: jobs are still queued or running; the tables will miss their runs.")
        runs = store.runs_table()
        methods = list(runs["method"].unique()) if not runs.empty else []
        current = finalize(store, spec, MethodRegistry(), methods, options.conditions(args))
        summary = (
            f", {store.root / 'summary.md'}"
            if current
            else " (no finished run at the current settings: no summary)"
        )
        print(f"written: {store.root / 'runs.csv'}{summary}")
    return 0
