"""`bench study`: run, follow, export and merge a study file (`studies/<name>.toml`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cli import options

if TYPE_CHECKING:
    from bench.study.file import Study, StudyDataset

PREFER_HELP = (
    "when a run is in both with other numbers from another machine or thread count: keep the "
    "archive's (kept) or the incoming one (default: stop and list them)"
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """`bench study` and its sub-commands."""
    parser = commands.add_parser(
        "study",
        help="run, follow, export and merge a study file",
        description="A study file fixes datasets (with their settings), methods, seeds and the "
        "comparison; its archive (studies/<name>/) holds every finished run, so `bench compare "
        "--study FILE` re-derives the verdict without training.",
    )
    actions = parser.add_subparsers(dest="action", required=True)

    run = actions.add_parser(
        "run", help="run what the study misses", description="Run the study's missing runs."
    )
    _common(run)
    run.add_argument(
        "--export",
        action="store_true",
        help="write each dataset's archive as soon as its runs end",
    )
    run.add_argument("--prefer", choices=("kept", "incoming"), help=f"with --export, {PREFER_HELP}")
    run.add_argument("--data-root", type=Path, help="folder holding the datasets")
    options.add_training_place(run)
    options.add_executor(run, "a job is a stage 1 and every run that shares it")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.set_defaults(run=_run)

    status = actions.add_parser(
        "status",
        help="what is done, what remains and its estimated cost",
        description="Per dataset: runs done (in the results folder or the archive) and missing, "
        "the stage-1 trainings they need and their cost estimated from measured stage-1 times.",
    )
    _common(status)
    status.set_defaults(run=_status)

    export = actions.add_parser(
        "export",
        help="write the study's finished runs to its archive",
        description="Merge the study's finished runs of the results folder into its archive "
        "(studies/<name>/<dataset>.csv and .npz).",
    )
    _common(export)
    export.add_argument("--prefer", choices=("kept", "incoming"), help=PREFER_HELP)
    export.set_defaults(run=_export)

    merge = actions.add_parser(
        "merge",
        help="merge another archive of the same study into this one",
        description="Merge the archive in FOLDER (another machine's or lab's export of this "
        "study) into the study's archive.",
    )
    merge.add_argument("file", type=Path, help="the study file")
    merge.add_argument("folder", type=Path, help="the other archive's folder")
    merge.add_argument("--datasets", help="comma-separated datasets (default: all the study's)")
    merge.add_argument("--prefer", choices=("kept", "incoming"), help=PREFER_HELP)
    merge.set_defaults(run=_merge)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the study file, e.g. studies/paper-cpu.toml")
    parser.add_argument("--datasets", help="comma-separated datasets (default: all the study's)")
    options.add_results_dir(parser)
    options.add_cache_dir(parser)


def _load(args: argparse.Namespace) -> tuple[Study, list[StudyDataset]]:
    from bench.study.file import load_study

    study = load_study(args.file)
    if not args.datasets:
        return study, list(study.datasets)
    return study, [study.dataset(name.strip()) for name in args.datasets.split(",")]


def _results_dir(args: argparse.Namespace) -> Path:
    from bench.core.layout import default_results_dir

    return args.results_dir or default_results_dir()


def _run(args: argparse.Namespace) -> int:
    from bench.run.runner import RunOptions
    from bench.study.execute import run_study

    study, datasets = _load(args)
    base = RunOptions(
        dataset=datasets[0].name,
        conditions=options.conditions(args),
        results_dir=_results_dir(args),
        progress=not args.no_progress,
    )
    outcome = run_study(study, datasets, base, options.execution(args), args.export, args.prefer)
    if not outcome.failures:
        return 0
    for name, failed in outcome.failures.items():
        print(f"bench: {name}: {len(failed)} run(s) failed, first {failed[0]}", file=sys.stderr)
    return 1


def _status(args: argparse.Namespace) -> int:
    from bench.core.errors import BenchError
    from bench.recipes.methods import MethodRegistry
    from bench.study.grid import progress

    study, datasets = _load(args)
    registry = MethodRegistry()
    total_missing, total_estimate, unknown = 0, 0.0, []
    tuning = ""
    if study.tuning:
        variants = study.tuning.variants(registry)
        tuning = f"; tuning {len(variants)} of them on {study.tuning.dataset}"
    print(
        f"study {study.name}: {len(study.method_list(registry))} method(s), data seeds "
        f"{list(study.data_seeds)}, train seeds {list(study.train_seeds)}{tuning}"
    )
    for dataset in datasets:
        try:
            state = progress(study, dataset, _results_dir(args), registry)
        except BenchError as error:  # e.g. pretrained weights this machine lacks
            print(f"  {dataset.name}: its runs cannot be planned here: {error}")
            unknown.append(dataset.name)
            continue
        missing = len(state.missing)
        total_missing += missing
        cost = "nothing left" if not missing else "cost unknown (no run of it measured yet)"
        if missing and state.estimate_s is not None:
            cost = f"about {_hours(state.estimate_s)} of stage-1 training"
            total_estimate += state.estimate_s
        elif missing:
            unknown.append(dataset.name)
        print(
            f"  {dataset.name}: {len(state.done)} of {state.cells} run(s) done, {missing} "
            f"missing, {state.stage1_missing} stage-1 training(s) to do; {cost}"
        )
        if missing:
            method, data_seed, train_seed = state.missing[0]
            print(f"    first missing: {method} at data seed {data_seed}, train seed {train_seed}")
    if total_missing or unknown:
        line = (
            f"remaining: {total_missing} run(s), about {_hours(total_estimate)} of stage-1 "
            "training in one worker (the stage-1 times measured here; divide by --jobs on "
            "idle cores)"
        )
        if unknown:
            line += f", plus {', '.join(unknown)} (not measured or plannable here)"
        print(line + f"; `bench study run {args.file}` runs it.")
    else:
        print(f"every run is done; `bench compare --study {args.file}` compares them.")
    return 0


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _export(args: argparse.Namespace) -> int:
    from bench.recipes.methods import MethodRegistry
    from bench.study.grid import cells, export

    study, datasets = _load(args)
    registry = MethodRegistry()
    for dataset in datasets:
        archive = export(study, dataset, _results_dir(args), registry, args.prefer)
        asked = len(cells(study, dataset, registry))
        print(f"{dataset.name}: {len(archive.runs)} of {asked} run(s) in {study.archive}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from bench.core.errors import BenchError
    from bench.study.grid import merge_folder

    study, datasets = _load(args)
    if not args.folder.is_dir():
        raise BenchError(f"{args.folder}: no such folder; give the other archive's folder.")
    for dataset in datasets:
        merged = merge_folder(study, dataset, args.folder, args.prefer)
        resolved = len(merged.resolved)
        print(
            f"{dataset.name}: {merged.added} run(s) added, {merged.same} already there"
            + (f", {resolved} conflict(s) resolved by --prefer {args.prefer}" if resolved else "")
        )
    return 0
