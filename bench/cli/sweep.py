"""`bench sweep`: tune methods on the validation split with Optuna."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli import options
from bench.core.validation import non_negative_int, positive_int


def add_parser(commands: argparse._SubParsersAction) -> None:
    """`bench sweep` and its options."""
    parser = commands.add_parser(
        "sweep",
        help="tune methods on the validation split with Optuna",
        description="Tune each method's [search] space by validation balanced accuracy; "
        "rerunning resumes the study, several workers may share one storage.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--method", help="the method to tune, e.g. supcon+crt")
    which.add_argument("--methods", help="comma-separated methods: one study each, same budget")
    parser.add_argument("--dataset", default="synthetic", help="dataset name (default: synthetic)")
    parser.add_argument(
        "--n-trials",
        type=non_negative_int,
        default=20,
        help="finished trials the study should reach, counting earlier ones (default: 20)",
    )
    parser.add_argument(
        "--timeout", type=options.duration, help="stop starting trials after this: 90s, 30m, 2h"
    )
    parser.add_argument(
        "--storage",
        help="sqlite (the default: results/<dataset>/sweeps/<method>.db), journal (a journal "
        "file there), or a database URL such as postgresql://user@host/db shared by workers",
    )
    parser.add_argument(
        "--space", type=Path, help="TOML file whose [search] table replaces the recipe's"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, help="seed of the TPE sampler (default: random)"
    )
    parser.add_argument(
        "--data-seeds",
        type=options.seeds,
        default=(0,),
        help="split seeds a trial is scored on (mean validation balanced accuracy; default: 0)",
    )
    options.add_imbalance(parser)
    options.add_settings(parser, "Trials train at these settings; --export records them.")
    parser.add_argument(
        "--heartbeat",
        type=positive_int,
        default=60,
        help="seconds between a worker's heartbeats; a trial silent for twice this is failed",
    )
    parser.add_argument(
        "--export",
        action="store_true",
        help="write the best trial as methods/tuned/<method>-<dataset>.toml",
    )
    options.add_training_place(parser)
    options.add_executor(parser, "a job is an Optuna worker; workers share the study's storage")
    options.add_results_dir(parser)
    parser.add_argument("--data-root", type=Path, help="folder of a real dataset")
    options.add_cache_dir(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """One study per method; 1 when a study has only failed trials."""
    from bench.sweep.command import sweep_methods
    from bench.sweep.options import SweepOptions

    sweep = SweepOptions(
        dataset=args.dataset,
        method=args.method or args.methods,
        n_trials=args.n_trials,
        timeout=args.timeout,
        storage=args.storage,
        space=args.space,
        seed=args.seed,
        heartbeat=args.heartbeat,
        results_dir=args.results_dir,
        progress=not args.no_progress,
        data_seeds=args.data_seeds,
        conditions=options.conditions(args),
    )
    return sweep_methods(sweep, options.execution(args), export=args.export)
