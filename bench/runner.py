"""Expands methods × data seeds × train seeds into runs, trains what is missing, records all."""

from __future__ import annotations

import dataclasses
import platform
import subprocess
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import torch
import torchvision
from tqdm import tqdm

import bench
from bench.artefacts import ArtefactCache
from bench.claims import join
from bench.data.cache import cache_root
from bench.data.imageset import ImageSet
from bench.data.loading import load_imageset
from bench.data.specs import DatasetSpec, get_spec
from bench.data.split import make_split, write_manifest
from bench.device import resolve_device
from bench.errors import TrainingDiverged
from bench.experiment import Experiment, current_settings_ids, evaluate, settings_for, settings_id
from bench.files import ensure_writable, stable_hash
from bench.layout import default_results_dir, project_root
from bench.recipes import Method, MethodRegistry
from bench.report.build import build_report
from bench.store import ResultsStore, runs_at_settings
from bench.summary import summarise, write_summary


@dataclass(frozen=True)
class RunOptions:
    """What `bench run` was asked: names, seeds, and command-line overrides of the training
    settings (`None`: not given)."""

    dataset: str
    methods: str = "all"
    seeds: tuple[int, ...] = (0, 1, 2)
    data_seeds: tuple[int, ...] = (0,)
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    device: str = "auto"
    results_dir: Path | None = None
    data_root: Path | None = None
    skip_bad: bool = False
    report: bool = True
    methods_dir: Path | None = None
    progress: bool = True


@dataclass(frozen=True)
class PlannedRun:
    """One (method, data seed, train seed) in its experiment, with its recorded config, its
    id, its variant (the config without seeds: runs of one variant differ only in seeds)
    and its settings id."""

    method: Method
    experiment: Experiment
    train_seed: int
    config: dict[str, Any]
    run_id: str
    variant: str
    settings_id: str
    manifest: Path


def plan_run(experiment: Experiment, method: Method, train_seed: int, manifest: Path) -> PlannedRun:
    """Resolve everything that changes the result of one run, and hash it into its id."""
    config = experiment.config(method, train_seed)
    seedless = {k: v for k, v in config.items() if k not in ("split", "train_seed")}
    run_id = f"{method.slug}-d{experiment.split.data_seed}-s{train_seed}-{stable_hash(config, 10)}"
    return PlannedRun(
        method,
        experiment,
        train_seed,
        config,
        run_id,
        stable_hash(seedless, 8),
        settings_id(experiment.spec, experiment.settings),
        manifest,
    )


def _environment() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "-C", str(project_root()), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "git_commit": commit or None,
        "versions": {
            "bench": bench.__version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
        },
        "host": platform.node(),
        "torch_threads": torch.get_num_threads(),
    }


def plan(options: RunOptions, spec: DatasetSpec, methods: list[Method]) -> list[PlannedRun]:
    """Every (method, data seed, train seed) asked, each in the experiment of its settings
    (image sets are loaded once per image size, splits drawn once per data seed)."""
    resolved = {m.name: settings_for(spec, m, options.overrides) for m in methods}
    for note in (n for r in resolved.values() for n in r.notes):
        tqdm.write(note)
    for method in methods:
        # Clean only when it is tuned on and run at one and the same split (older tuned
        # recipes did not record theirs: sweeps then used data seed 0).
        if method.tuning and len({*(method.tuning.data_seeds or (0,)), *options.data_seeds}) > 1:
            tqdm.write(
                f"{method.name}: tuned on the validation split of data seed(s) "
                f"{list(method.tuning.data_seeds)}; the test split of any other data seed "
                "overlaps their train and validation items, so test scores away from a single "
                "tuned seed are optimistic."
            )
    device = resolve_device(options.device)
    store = ResultsStore(options.results_dir or default_results_dir(), spec.name)
    cache = ArtefactCache()
    imagesets: dict[int, ImageSet] = {}
    for size in dict.fromkeys(r.settings.image_size for r in resolved.values()):
        imagesets[size] = load_imageset(
            spec, size, options.data_root, options.progress, options.skip_bad
        )
        if skipped := imagesets[size].provenance.get("skipped"):
            tqdm.write(
                f"{spec.name}: --skip-bad left out {len(skipped)} unreadable image(s), first "
                f"{skipped[0]['path']} ({skipped[0]['error']}); all are listed in run.json."
            )
    planned = []
    for data_seed in options.data_seeds:
        splits = {}
        for size, imageset in imagesets.items():
            split = make_split(imageset, spec.val_fraction, spec.test_fraction, data_seed)
            splits[size] = (split, write_manifest(split, imageset, store.splits_dir))
        for method in methods:
            settings = resolved[method.name].settings
            split, manifest = splits[settings.image_size]
            experiment = Experiment(
                spec,
                imagesets[settings.image_size],
                split,
                settings,
                device,
                cache,
                options.progress,
            )
            planned += [plan_run(experiment, method, seed, manifest) for seed in options.seeds]
    return planned


@dataclass(frozen=True)
class RunOutcome:
    """The summary of the runs asked for, and the runs that failed in this invocation (id and
    reason), out of how many were asked."""

    summary: pd.DataFrame
    failures: tuple[str, ...]
    asked: int


def run_benchmark(options: RunOptions) -> RunOutcome:
    """Run every missing (method, data seed, train seed); returns the summary of those asked
    and the failures."""
    spec = get_spec(options.dataset)
    registry = MethodRegistry(options.methods_dir)
    methods = registry.expand(options.methods)
    store = ResultsStore(options.results_dir or default_results_dir(), spec.name)
    ensure_writable(store.root, "the results folder", "choose another with --results-dir")
    ensure_writable(cache_root(), "the cache", "choose another with --cache-dir")
    join(store.root)  # this process's session there; debris of dead sessions removed
    join(cache_root())

    load_start = time.perf_counter()
    planned = plan(options, spec, methods)
    load_seconds = time.perf_counter() - load_start
    todo = [run for run in planned if not store.is_done(run.run_id)]
    device = planned[0].experiment.device
    tqdm.write(
        f"{spec.name}: {len(planned[0].experiment.imageset.labels)} images, "
        f"{len(methods)} method(s), {len(planned)} run(s): {len(planned) - len(todo)} already "
        f"done, {len(todo)} to run on {device.type} (data loaded in {load_seconds:.1f} s)."
    )
    environment = _environment()
    sweep_start, stage1_seconds, trained = time.perf_counter(), 0.0, 0
    failures: list[str] = []
    bar = tqdm(todo, desc="runs", unit="run", disable=not options.progress or not todo)
    for run in bar:
        bar.set_postfix_str(run.method.name)
        record = {
            "run_id": run.run_id,
            "variant": run.variant,
            "settings_id": run.settings_id,
            "config": run.config,
            "overrides": {k: v for k, v in options.overrides.items() if v is not None},
            "split_manifest": str(run.manifest),
            "data": {**run.experiment.imageset.provenance, "skip_bad": options.skip_bad},
            "device_name": _device_name(device),
            **environment,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            evaluation = evaluate(run.method, run.experiment, run.train_seed)
        except Exception as error:  # a failed run is recorded and the sweep goes on
            reason = f"{type(error).__name__}: {error}"
            trace = "" if isinstance(error, TrainingDiverged) else traceback.format_exc(limit=5)
            store.save_failed(record, f"{reason}\n{trace}".strip())
            tqdm.write(f"run {run.run_id} failed: {reason}")
            failures.append(f"{run.run_id} ({reason})")
            continue
        record |= evaluation.record | {
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds")
        }
        store.save_done(record, evaluation.metrics, evaluation.predictions)
        stage1 = evaluation.record["stage1"]
        if not stage1["reused"]:
            stage1_seconds, trained = stage1_seconds + stage1["train_s"], trained + 1
        how = (
            f"stage 1 reused from cache {stage1['key']}"
            if stage1["reused"]
            else f"stage 1 trained in {stage1['train_s']:.0f} s"
        )
        test = evaluation.metrics["test"]
        tqdm.write(
            f"{run.run_id}: test BAcc {test['balanced_accuracy']:.3f}, "
            f"Acc {test['accuracy']:.3f} ({how})"
        )

    total = time.perf_counter() - sweep_start
    tqdm.write(
        f"{len(todo) - len(failures)} run(s) done, {len(failures)} failed, in {total:.0f} s, "
        f"of which {trained} stage-1 training(s) took {stage1_seconds:.0f} s; "
        f"results in {store.root}"
    )
    runs = store.write_runs_csv()
    order = [method.name for method in methods] + list(registry.lists.get("all", []))
    ids = current_settings_ids(spec, registry, runs["method"].unique(), options.overrides)
    write_summary(
        summarise(runs_at_settings(runs, ids), order),
        store.root,
        f"{spec.name}: recorded runs at the current settings",
    )
    if options.report:
        try:
            report = build_report(
                store.root.parent,
                spec.name,
                [m.name for m in methods],
                settings_ids={run.method.name: run.settings_id for run in planned},
            )
            tqdm.write(f"report of these methods: {report.folder / 'index.html'}")
        except Exception as error:  # the runs are saved; only the report is missing
            tqdm.write(
                f"report not written ({type(error).__name__}: {error}); the runs are saved, "
                f"`bench report --dataset {spec.name}` retries."
            )
    asked = runs[runs["run_id"].isin([run.run_id for run in planned])]
    return RunOutcome(summarise(asked, order), tuple(failures), len(planned))


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()})"
