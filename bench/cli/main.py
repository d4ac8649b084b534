"""The `bench` command line: parses arguments, calls the library, formats the answer."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import torch
from optuna.trial import TrialState

from bench.compare.build import analyse, verdict, write_comparison
from bench.compare.collect import collect, datasets_with_runs
from bench.core.device import DEVICE_CHOICES
from bench.core.errors import BenchError, Interrupted, unknown_name
from bench.core.files import ensure_writable
from bench.core.layout import default_results_dir
from bench.core.signals import exit_code, stop_on_signals, stopped_by
from bench.core.store import ResultsStore
from bench.core.validation import finite_float, non_negative_int, positive_int
from bench.data.cache import clear_images, image_entries, images_folder
from bench.data.download import fetch
from bench.data.inventory import describe
from bench.data.loading import data_home
from bench.data.specs import all_specs, get_spec, results_spec
from bench.execution.executors.options import (
    EXECUTORS,
    ExecutorOptions,
    parse_minutes,
    resolve_options,
)
from bench.experiment.experiment import current_settings_ids
from bench.experiment.settings import SETTING_NAMES
from bench.recipes.methods import TUNED, MethodRegistry
from bench.report.build import build_report
from bench.report.summary import HEADLINE, format_table, outlier_lines
from bench.run.runner import RunOptions, finalize, run_benchmark
from bench.run.status import describe as describe_status
from bench.stage1.artefacts import ArtefactCache
from bench.stage1.checkpoints import CHECKPOINT_RULES
from bench.sweep.command import SweepOptions, export_best, parse_duration, run_sweep, save_plots
from bench.sweep.workers import run_sweep_workers

MAX_SEEDS = 1000  # per option: far more runs than any study needs


def _seeds(text: str) -> tuple[int, ...]:
    """Seeds as a list and ranges: `0,1,2`, `0-4`, `0-2,5`; each 0 or more, each once."""
    seeds: dict[int, None] = {}  # ordered, with O(1) membership
    for item in (part.strip() for part in text.split(",")):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not match:
            raise argparse.ArgumentTypeError(
                f"seeds are integers of 0 or more, as a list and ranges (0,1,2 or 0-4 or "
                f"0-2,5); got {text!r}"
            )
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last < first:
            raise argparse.ArgumentTypeError(f"seed range {item!r} runs backwards")
        if len(seeds) + last - first >= MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"more than {MAX_SEEDS} seeds in {text!r}")
        for seed in range(first, last + 1):
            if seed in seeds:
                raise argparse.ArgumentTypeError(f"seed {seed} is given twice in {text!r}")
            seeds[seed] = None
    return tuple(seeds)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit code 2, like every
    other user error (`--help` still shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except BenchError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `bench` and its sub-commands."""
    parser = OneLineParser(
        prog="bench", description="Benchmark imbalance methods for medical image classification."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="train and evaluate methods over seeds",
        description="Train and evaluate every (method, seed) not yet in "
        "results/, then print the summary table.",
    )
    run.add_argument(
        "--methods", default="all", help="comma-separated method names or lists (default: all)"
    )
    run.add_argument("--dataset", default="synthetic", help="dataset name (default: synthetic)")
    run.add_argument(
        "--seeds",
        type=_seeds,
        default=(0, 1, 2),
        help="training seeds: initialisation, sampling, augmentation (default: 0,1,2)",
    )
    run.add_argument("--data-seeds", type=_seeds, default=(0,), help="split seeds (default: 0)")
    _setting_options(run, "Recorded in run.json and part of the run id.")
    _compile_option(run)
    run.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    _executor_options(run, "a job is a stage 1 and every run that shares it")
    run.add_argument("--results-dir", type=Path, help="default: results/ in the project")
    run.add_argument(
        "--data-root",
        type=Path,
        help="folder holding the dataset (else $BENCH_DATA_ROOT, then the cache)",
    )
    run.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out unreadable images instead of stopping (each one is listed in run.json)",
    )
    _cache_dir_option(run)
    run.add_argument(
        "--no-report", action="store_true", help="skip refreshing the report at the end"
    )
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")

    report = commands.add_parser(
        "report",
        help="tables, statistics and plots from the finished runs",
        description="Write results/<dataset>/report/: main, per-class and significance tables "
        "(Markdown, CSV, LaTeX), figures (PNG, PDF with --pdf) and a self-contained index.html.",
    )
    report.add_argument("--dataset", default="synthetic", help="dataset name (default: synthetic)")
    report.add_argument(
        "--methods", help="comma-separated methods or lists to include (default: every method run)"
    )
    report.add_argument(
        "--reference",
        help="method the others are tested against (default: the two-stage method without "
        "metric learning with the best validation balanced accuracy)",
    )
    report.add_argument(
        "--plot-methods",
        help="comma-separated methods for the per-method figures (default: ce, the reference, "
        "the best of each family by validation balanced accuracy)",
    )
    report.add_argument("--pdf", action="store_true", help="also write each figure as PDF")
    _setting_options(report, "The runs reported are those made at these settings.")
    report.add_argument(
        "--all-settings",
        action="store_true",
        help="report every finished run, whatever its settings (a method run at several "
        "settings gets a row per variant)",
    )
    report.add_argument("--results-dir", type=Path, help="default: results/ in the project")
    _cache_dir_option(report)

    sweep = commands.add_parser(
        "sweep",
        help="tune methods on the validation split with Optuna",
        description="Tune each method's [search] space by validation balanced accuracy; "
        "rerunning resumes the study, several workers may share one storage.",
    )
    which = sweep.add_mutually_exclusive_group(required=True)
    which.add_argument("--method", help="the method to tune, e.g. supcon+crt")
    which.add_argument("--methods", help="comma-separated methods: one study each, same budget")
    sweep.add_argument("--dataset", default="synthetic", help="dataset name (default: synthetic)")
    sweep.add_argument(
        "--n-trials",
        type=non_negative_int,
        default=20,
        help="finished trials the study should reach, counting earlier ones (default: 20)",
    )
    sweep.add_argument(
        "--timeout", type=_duration, help="stop starting trials after this: 90s, 30m, 2h"
    )
    sweep.add_argument(
        "--storage",
        help="sqlite (the default: results/<dataset>/sweeps/<method>.db), journal (a journal "
        "file there), or a database URL such as postgresql://user@host/db shared by workers",
    )
    sweep.add_argument(
        "--space", type=Path, help="TOML file whose [search] table replaces the recipe's"
    )
    sweep.add_argument(
        "--seed", type=non_negative_int, help="seed of the TPE sampler (default: random)"
    )
    sweep.add_argument(
        "--data-seeds",
        type=_seeds,
        default=(0,),
        help="split seeds a trial is scored on (mean validation balanced accuracy; default: 0)",
    )
    _setting_options(sweep, "Trials train at these settings; --export records them.")
    _compile_option(sweep)
    sweep.add_argument(
        "--heartbeat",
        type=positive_int,
        default=60,
        help="seconds between a worker's heartbeats; a trial silent for twice this is failed",
    )
    sweep.add_argument(
        "--export",
        action="store_true",
        help="write the best trial as methods/tuned/<method>-<dataset>.toml",
    )
    sweep.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    _executor_options(sweep, "a job is an Optuna worker; workers share the study's storage")
    sweep.add_argument("--results-dir", type=Path, help="default: results/ in the project")
    sweep.add_argument("--data-root", type=Path, help="folder of a real dataset")
    _cache_dir_option(sweep)
    sweep.add_argument("--no-progress", action="store_true", help="hide progress bars")

    status_parser = commands.add_parser(
        "status",
        help="what is done, running, pending and failed, and where the logs are",
        description="The runs recorded for a dataset and the jobs submitted for it (local "
        "workers and SLURM), with each failed job's error and log.",
    )
    status_parser.add_argument(
        "--dataset", default="synthetic", help="dataset name (default: synthetic)"
    )
    status_parser.add_argument("--results-dir", type=Path, help="default: results/ in the project")
    status_parser.add_argument(
        "--finalize",
        action="store_true",
        help="write runs.csv, the summary and the report from the runs recorded (what an "
        "interrupted `bench run` left undone)",
    )
    _setting_options(status_parser, "--finalize tabulates the runs made at these settings.")
    _cache_dir_option(status_parser)

    compare = commands.add_parser(
        "compare",
        help="one comparison over datasets: ranks, tests, the metric-learning verdict",
        description="Compare methods over several datasets (their runs at the current "
        "settings): mean ranks, Friedman and Nemenyi with a critical-difference diagram, and "
        "for each metric-learning stage 1 the Bayesian signed-rank test against the same "
        "stage 2 on cross-entropy; writes results/compare/.",
    )
    compare.add_argument(
        "--datasets",
        help="comma-separated dataset names (default: every named dataset with runs)",
    )
    compare.add_argument(
        "--methods", help="methods or lists to compare (default: those run on every dataset)"
    )
    compare.add_argument(
        "--rope",
        type=finite_float,
        default=1.0,
        help="region of practical equivalence, ± BAcc points (default: 1)",
    )
    compare.add_argument("--pdf", action="store_true", help="also write each figure as PDF")
    _setting_options(compare, "The runs compared are those made at these settings.")
    compare.add_argument("--results-dir", type=Path, help="default: results/ in the project")
    _cache_dir_option(compare)

    listing = commands.add_parser("list", help="list registered methods or datasets")
    listing.add_argument("what", choices=("methods", "datasets"))

    data = commands.add_parser("data", help="locate, inspect or download a dataset")
    data_commands = data.add_subparsers(dest="action", required=True)
    info = data_commands.add_parser(
        "info", help="where a dataset was looked for, what was found, its classes and splits"
    )
    info.add_argument("name", help="dataset name, imagefolder:PATH or csv:FILE")
    info.add_argument("--data-root", type=Path, help="look here first (as `bench run` does)")
    download = data_commands.add_parser(
        "download", help="fetch a dataset's public files (resumable, checksum-verified)"
    )
    download.add_argument("name", help="dataset name")
    download.add_argument("--source", help="which of the dataset's downloads (default: the first)")
    download.add_argument(
        "--to", type=Path, help="folder to save into (default: <cache>/data/<dataset>)"
    )
    download.add_argument("--no-progress", action="store_true", help="hide progress bars")
    for sub in (info, download):
        _cache_dir_option(sub)

    cache = commands.add_parser(
        "cache",
        help="list or clear cached stage-1 artefacts and decoded images",
        description="List or clear the caches: stage-1 artefacts and decoded image sets (both "
        "unless one is named).",
    )
    cache.add_argument("action", choices=("list", "clear"))
    cache.add_argument("--stage1", action="store_true", help="only the stage-1 artefacts")
    cache.add_argument("--images", action="store_true", help="only the decoded image sets")
    _cache_dir_option(cache)
    return parser


def _setting_options(parser: argparse.ArgumentParser, meaning: str) -> None:
    """The overrides of the training settings (the same for run, sweep and report)."""
    knobs = parser.add_argument_group(
        "overrides of the training settings (dataset spec, or a tuned method's own)", meaning
    )
    knobs.add_argument("--epochs", type=positive_int)
    knobs.add_argument("--image-size", type=positive_int)
    knobs.add_argument("--backbone", help="resnet-compact, resnet-compact-wide, resnet18, resnet50")
    knobs.add_argument("--batch-size", type=positive_int)
    knobs.add_argument("--lr", type=finite_float, help="peak learning rate")
    knobs.add_argument(
        "--min-steps",
        type=non_negative_int,
        help="stage 1 runs at least this many optimiser steps, more epochs when the epochs "
        "fall short (default 500; 0: the epochs alone)",
    )
    knobs.add_argument(
        "--checkpoint",
        choices=list(CHECKPOINT_RULES),
        help="the stage-1 epoch kept: last (default), best, smoothed or ncm "
        "(see bench/stage1/checkpoints.py)",
    )
    knobs.add_argument(
        "--pretrained",
        action="store_true",
        default=None,
        help="ImageNet weights for resnet18/50 (from torch's hub cache, or --weights)",
    )
    knobs.add_argument(
        "--no-pretrained",
        dest="pretrained",
        action="store_false",
        help="train from scratch, whatever the profile says (recorded)",
    )
    knobs.add_argument(
        "--weights",
        type=lambda text: str(Path(text).expanduser().resolve()),
        help="pretrained weights from a file: a torchvision state dict of the backbone "
        "(implies --pretrained; its digest enters the run id)",
    )
    knobs.add_argument(
        "--profile",
        help="a training profile of the dataset spec ([training.profiles.NAME], e.g. gpu: "
        "resnet50 at 224 px, pretrained); default cpu: its [training] table",
    )


def _compile_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile stage 1 (recorded in run.json, not in the run id; falls back, "
        "saying why, where unsupported)",
    )


def _executor_options(parser: argparse.ArgumentParser, unit: str) -> None:
    """Where the work runs (the same for run and sweep)."""
    group = parser.add_argument_group(
        "executors", f"Where the work runs ({unit}). Defaults < --executor-config < these."
    )
    group.add_argument(
        "--executor",
        choices=EXECUTORS,
        help="local (default: this process, or --jobs worker processes) or slurm (a job array "
        "through submitit)",
    )
    group.add_argument(
        "--jobs", type=positive_int, help="workers: local processes, or SLURM jobs at once"
    )
    group.add_argument(
        "--threads",
        type=positive_int,
        help="torch threads per worker (recorded; default: the CPUs a worker was given)",
    )
    group.add_argument(
        "--executor-config", type=Path, help="TOML file with an [executor] table (see README)"
    )
    group.add_argument("--slurm-partition", help="partition to submit to")
    group.add_argument("--slurm-gpus", type=non_negative_int, help="GPUs per job (default 0)")
    group.add_argument("--slurm-cpus", type=positive_int, help="CPUs per job (default 1)")
    group.add_argument("--slurm-mem-gb", type=finite_float, help="memory per job, GB")
    group.add_argument("--slurm-time", type=_minutes, help="time limit per job: 90, 30m, 4h")
    group.add_argument(
        "--slurm-setup",
        action="append",
        help="shell line run before each job (repeatable), e.g. 'source ~/venv/bin/activate'",
    )
    group.add_argument(
        "--slurm-array-parallelism", type=positive_int, help="most array jobs running at once"
    )
    group.add_argument(
        "--no-slurm-probe",
        dest="slurm_probe",
        action="store_false",
        default=None,
        help="skip the probe job that checks the compute nodes see the results folder",
    )


def _execution(args: argparse.Namespace) -> ExecutorOptions:
    """The executor options of a command: defaults < --executor-config < the command line."""
    given = {
        "name": args.executor,
        "jobs": args.jobs,
        "threads": args.threads,
        "slurm_partition": args.slurm_partition,
        "slurm_gpus": args.slurm_gpus,
        "slurm_cpus": args.slurm_cpus,
        "slurm_mem_gb": args.slurm_mem_gb,
        "slurm_time": args.slurm_time,
        "slurm_setup": tuple(args.slurm_setup or ()),
        "slurm_array_parallelism": args.slurm_array_parallelism,
        "slurm_probe": args.slurm_probe,
    }
    return resolve_options(args.executor_config, given)


def _minutes(text: str) -> int:
    try:
        return parse_minutes(text)
    except BenchError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The training settings given on the command line (None: not given)."""
    return {name: getattr(args, name, None) for name in SETTING_NAMES}


def _cache_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="cache of decoded images and stage-1 artefacts (same as $BENCH_CACHE_DIR; "
        "default ~/.cache/medlt-bench)",
    )


def _run(args: argparse.Namespace) -> int:
    execution = _execution(args)
    outcome = run_benchmark(
        RunOptions(
            dataset=args.dataset,
            methods=args.methods,
            seeds=args.seeds,
            data_seeds=args.data_seeds,
            overrides=_overrides(args),
            profile=args.profile,
            compile=args.compile,
            device=args.device,
            results_dir=args.results_dir,
            data_root=args.data_root,
            skip_bad=args.skip_bad,
            report=not args.no_report,
            progress=not args.no_progress,
        ),
        execution,
    )
    print(format_table(outcome.summary, HEADLINE))
    for line in outlier_lines(outcome.outliers, outcome.summary):
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


def _status(args: argparse.Namespace) -> int:
    results_dir = args.results_dir or default_results_dir()
    spec = results_spec(args.dataset, results_dir)
    name = spec.name if spec else args.dataset
    store = ResultsStore(results_dir, name)
    if not store.root.is_dir():
        raise BenchError(
            f"no results for {name!r} in {results_dir} (choose it with --results-dir)."
        )
    if args.profile:  # checked even when only --finalize reads it: a typo is never silent
        if spec is None:
            raise BenchError(f"--profile {args.profile}: no dataset spec named {name!r}.")
        spec.training_for(args.profile)
    text, active = describe_status(store)
    print(text)
    if args.finalize:
        if spec is None:
            raise BenchError(f"no dataset spec named {name!r}: use `bench report` instead.")
        ensure_writable(store.root, "the results folder", "choose it with --results-dir")
        if active:
            print("note: jobs are still queued or running; the tables will miss their runs.")
        registry = MethodRegistry()
        runs = store.runs_table()
        methods = list(runs["method"].unique()) if not runs.empty else []
        finalize(store, spec, registry, methods, _overrides(args), profile=args.profile)
        print(f"written: {store.root / 'runs.csv'}, {store.root / 'summary.md'}")
    return 0


def _compare(args: argparse.Namespace) -> None:
    results_dir = args.results_dir or default_results_dir()
    registry = MethodRegistry()
    if args.datasets:
        datasets = [get_spec(name.strip()).name for name in args.datasets.split(",")]
    else:
        datasets = datasets_with_runs(results_dir)
    if not datasets:
        raise BenchError(f"no dataset has runs in {results_dir}; run some (bench run) first.")
    if not (args.rope > 0 and math.isfinite(args.rope)):
        raise BenchError(f"--rope must be a positive number of points, got {args.rope}.")
    methods = [m.name for m in registry.expand(args.methods)] if args.methods else None
    ensure_writable(results_dir, "the results folder", "choose it with --results-dir")
    scores = collect(
        results_dir,
        datasets,
        methods,
        registry,
        _overrides(args),
        args.profile,
        skip_stale=not args.datasets,
    )
    comparison = analyse(scores, registry, args.rope)
    folder = write_comparison(comparison, results_dir, args.pdf)
    print(verdict(comparison))
    print(f"comparison: {folder}; open {folder / 'index.html'}")


def _list(what: str) -> None:
    if what == "methods":
        registry = MethodRegistry()
        print("Stage-1 recipes (alone: one-stage methods):")
        for recipe in registry.stage1.values():
            print(f"  {recipe.name:18} {recipe.description}")
            print(f"  {'':18} {recipe.summary()}  [{recipe.reference}]")
        print("\nStage-2 recipes (compose as STAGE1+STAGE2, e.g. supcon+crt):")
        for stage2 in registry.stage2.values():
            print(f"  {stage2.name:18} {stage2.description}")
            print(f"  {'':18} {stage2.summary()}  [{stage2.reference}]")
        for name, members in registry.lists.items():
            print(f"\nlist {name!r} ({len(members)} methods): {', '.join(members)}")
    else:
        for spec in all_specs().values():
            aliases = f" (alias: {', '.join(spec.aliases)})" if spec.aliases else ""
            classes = f"{len(spec.classes)} classes" if spec.classes else "classes from the data"
            print(f"{spec.name:12} {spec.description}{aliases}")
            print(f"{'':12} formats: {', '.join(spec.formats)}; {classes}")
            print(f"{'':12} defaults (profile cpu): {spec.training}")
            for name, note in spec.profile_notes.items():
                print(f"{'':12} profile {name}: {note or spec.profiles[name]}")
            print(f"{'':12} source: {spec.source}")


def _data(args: argparse.Namespace) -> None:
    spec = get_spec(args.name)
    if args.action == "download":
        remotes = spec.downloads
        if not remotes:
            raise BenchError(
                f"{spec.name}: no public direct download is known; place the files by hand "
                f"(`bench data info {spec.name}` shows where they are looked for)."
            )
        source = args.source or next(iter(remotes))
        if source not in remotes:
            raise unknown_name(f"{spec.name} download", source, list(remotes))
        folder = args.to or data_home() / spec.name
        for remote in remotes[source]:
            path = fetch(remote, folder, progress=not args.no_progress)
            check = f"{remote.algorithm} verified" if remote.digest else "no published checksum"
            print(f"{path} ({path.stat().st_size / 1e6:.1f} MB, {check})")
        where = "--data-root" if args.to else "no --data-root: the cache is searched"
        print(f"{spec.name}: {source} is in {folder} (to use it: {where}).")
        return
    print(describe(spec, args.data_root))


def _report(args: argparse.Namespace) -> None:
    results_dir = args.results_dir or default_results_dir()
    # A results folder is reported on by its name; otherwise the name may be an alias.
    spec = results_spec(args.dataset, results_dir)
    name = spec.name if spec else args.dataset
    registry = MethodRegistry()
    methods = None
    if args.methods:
        methods = [m.name for m in registry.expand(args.methods)]
    plot_methods = [m.strip() for m in args.plot_methods.split(",")] if args.plot_methods else None
    settings_ids = None
    if spec is None:
        print(f"note: no dataset spec named {name!r}: every run is shown, whatever its settings")
    elif not args.all_settings:
        runs = ResultsStore(results_dir, spec.name).runs_table()
        names = methods or (list(runs["method"].unique()) if not runs.empty else [])
        settings_ids = current_settings_ids(spec, registry, names, _overrides(args), args.profile)
    if (results_dir / name).is_dir():
        ensure_writable(results_dir / name, "the results folder", "choose it with --results-dir")
    report = build_report(
        results_dir, name, methods, args.reference, plot_methods, args.pdf, settings_ids
    )
    for note in report.notes:
        print(f"note: {note}")
    print(
        f"report: {len(report.files)} files in {report.folder}; open {report.folder / 'index.html'}"
    )


def _sweep(args: argparse.Namespace) -> int:
    registry = MethodRegistry()
    methods = registry.expand(args.method or args.methods)
    code = 0
    execution = _execution(args)
    if execution.in_process and execution.threads:
        torch.set_num_threads(execution.threads)
    for method in methods:
        sweep = (
            run_sweep if execution.in_process else partial(run_sweep_workers, execution=execution)
        )
        study, folder = sweep(
            SweepOptions(
                dataset=args.dataset,
                method=method.name,
                n_trials=args.n_trials,
                timeout=args.timeout,
                storage=args.storage,
                space=args.space,
                seed=args.seed,
                heartbeat=args.heartbeat,
                results_dir=args.results_dir,
                data_root=args.data_root,
                device=args.device,
                progress=not args.no_progress,
                data_seeds=args.data_seeds,
                overrides=_overrides(args),
                profile=args.profile,
                compile=args.compile,
            )
        )
        if not any(t.state == TrialState.COMPLETE for t in study.trials):
            if args.export:
                raise BenchError(f"{study.study_name}: no completed trial to export yet.")
            print(f"{study.study_name}: no completed trial yet.")
            failed = any(t.state == TrialState.FAIL for t in study.trials)
            code = 1 if failed else code
            continue
        best = study.best_trial
        print(
            f"{study.study_name}: best validation BAcc {best.value:.4f} "
            f"(trial {best.number}) {best.params}"
        )
        plots, skipped = save_plots(study, folder / f"{method.slug}-plots")
        print(
            f"plots: {', '.join(str(p) for p in plots)}"
            + "".join(f"\n  not drawn: {s}" for s in skipped)
        )
        if args.export:
            path = export_best(study, method, get_spec(args.dataset).name, registry.folder)
            print(
                f"exported: {path}; evaluate it with "
                f"`bench run --methods {TUNED}{path.stem} --dataset {args.dataset}`"
            )
    return code


def _cache(args: argparse.Namespace) -> None:
    stage1, images = ArtefactCache(), images_folder()
    both = not (args.stage1 or args.images)
    if args.action == "clear":
        if both or args.stage1:
            _cleared(*stage1.clear(), "stage-1 artefact(s)", stage1.folder)
        if both or args.images:
            _cleared(*clear_images(), "decoded image set(s)", images)
        return
    if both or args.stage1:
        _list_entries(
            stage1.entries(),
            stage1.folder,
            "stage-1 artefact(s) and extras",
            lambda e: (
                f"{e.get('dataset', '?'):10} {e.get('stage1', e.get('extra', '?')):16} "
                f"data_seed={e.get('data_seed', '?')} train_seed={e.get('train_seed', '?')}"
            ),
        )
    if both or args.images:
        _list_entries(
            image_entries(),
            images,
            "decoded image set(s)",
            lambda e: (
                f"{e.get('dataset', '?'):10} {e.get('images', '?')} images at "
                f"{e.get('size', '?')} px"
            ),
        )


def _cleared(removed: int, kept: dict[str, str], kind: str, folder: Path) -> None:
    """What `bench cache clear` did in one folder, naming each entry it left to a live process."""
    print(f"removed {removed} {kind} from {folder}")
    for key, holder in sorted(kept.items()):
        print(f"  kept {key}: in use by {holder} (clear it again once that process has ended)")


def _list_entries(
    entries: list[dict[str, Any]], folder: Path, kind: str, describe: Callable[[dict], str]
) -> None:
    """One line per cache entry (an entry without its description is listed too), then the
    totals; stale entries are never served."""
    for entry in entries:
        print(
            f"{entry['key']}  {describe(entry)}  {entry['bytes'] / 1e6:.1f} MB  "
            f"{entry.get('created', 'no description')}" + ("  stale" if entry["stale"] else "")
        )
    total = sum(e["bytes"] for e in entries) / 1e6
    stale = sum(e["stale"] for e in entries)
    print(
        f"{len(entries)} {kind}, {total:.1f} MB, in {folder}"
        + (
            f"; {stale} stale (other code or libraries, or no digest: never served)"
            if stale
            else ""
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bench` console script; user errors exit with code 2."""
    stop_on_signals()  # SIGTERM and SIGHUP end a command as Ctrl-C does
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # --help, or an argument error already printed on one line
        return exit.code if isinstance(exit.code, int) else 2
    if getattr(args, "cache_dir", None):
        os.environ["BENCH_CACHE_DIR"] = str(args.cache_dir)
    try:
        if args.command == "run":
            return _run(args)
        elif args.command == "cache":
            _cache(args)
        elif args.command == "data":
            _data(args)
        elif args.command == "report":
            _report(args)
        elif args.command == "sweep":
            return _sweep(args)
        elif args.command == "status":
            return _status(args)
        elif args.command == "compare":
            _compare(args)
        else:
            _list(args.what)
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Interrupted as interrupted:
        print(f"bench: {interrupted}", file=sys.stderr)
        return exit_code()
    except KeyboardInterrupt:
        print(f"bench: {stopped_by()}; finished runs are kept, rerun to resume.", file=sys.stderr)
        return exit_code()
    return 0


if __name__ == "__main__":
    sys.exit(main())
