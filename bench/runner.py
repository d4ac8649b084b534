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
from bench.augment import Augment
from bench.data.imageset import ImageSet
from bench.data.loading import load_imageset
from bench.data.specs import DatasetSpec, get_spec
from bench.data.split import Split, make_split, write_manifest
from bench.decoupled import run_stage2
from bench.device import resolve_device
from bench.errors import unknown_name
from bench.files import stable_hash
from bench.layout import default_results_dir, project_root
from bench.metrics import classification_metrics
from bench.models import BACKBONES
from bench.recipes import Method, MethodRegistry
from bench.report.build import build_report
from bench.samplers import REBALANCING_SAMPLERS
from bench.stage1 import obtain_artefact
from bench.store import ResultsStore
from bench.summary import summarise, write_summary

SETTING_DEFAULTS: dict[str, Any] = {
    "image_size": 32,
    "backbone": "resnet-compact",
    "epochs": 15,
    "batch_size": 128,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "warmup_epochs": 1,
}


@dataclass(frozen=True)
class RunOptions:
    """What `bench run` was asked: names, seeds, and command-line overrides of the defaults."""

    dataset: str
    methods: str = "all"
    seeds: tuple[int, ...] = (0, 1, 2)
    data_seeds: tuple[int, ...] = (0,)
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    pretrained: bool = False
    device: str = "auto"
    results_dir: Path | None = None
    data_root: Path | None = None
    skip_bad: bool = False
    report: bool = True
    methods_dir: Path | None = None
    progress: bool = True


@dataclass(frozen=True)
class PlannedRun:
    """One (method, data seed, train seed) with its resolved config and id."""

    method: Method
    split: Split
    train_seed: int
    config: dict[str, Any]
    run_id: str
    setting: str


def resolve_settings(spec: DatasetSpec, overrides: dict[str, Any]) -> dict[str, Any]:
    """Training settings: built-in defaults < dataset spec `[training]` < command line."""
    given = {k: v for k, v in overrides.items() if v is not None}
    settings = {**SETTING_DEFAULTS, **spec.training, **given}
    if settings["backbone"] not in BACKBONES:
        raise unknown_name("backbone", settings["backbone"], BACKBONES)
    return settings


def plan_run(
    spec: DatasetSpec,
    imageset: ImageSet,
    method: Method,
    split: Split,
    train_seed: int,
    settings: dict[str, Any],
    pretrained: bool,
    device: torch.device,
) -> PlannedRun:
    """Resolve everything that changes the result of one run, and hash it into its id."""
    config = {
        "dataset": {
            "name": spec.name,
            "fingerprint": imageset.fingerprint,
            "classes": list(imageset.class_names),
            "val_fraction": spec.val_fraction,
            "test_fraction": spec.test_fraction,
            "shot_groups": spec.shot_groups,
        },
        "split": {"data_seed": split.data_seed, "hash": split.digest},
        "method": method.resolved(),
        "training": {
            **settings,
            "pretrained": pretrained,
            "augment": dataclasses.asdict(Augment()),
        },
        "train_seed": train_seed,
        "device": device.type,
    }
    seedless = {k: v for k, v in config.items() if k not in ("split", "train_seed")}
    setting = stable_hash(seedless, 8)
    run_id = f"{method.slug}-d{split.data_seed}-s{train_seed}-{stable_hash(config, 10)}"
    return PlannedRun(method, split, train_seed, config, run_id, setting)


def stage1_config(config: dict[str, Any], method: Method) -> dict[str, Any]:
    """The part of a run's config that decides its stage 1 (what the artefact key hashes)."""
    return {
        **{k: config[k] for k in ("dataset", "split", "training", "train_seed", "device")},
        "stage1": method.stage1.resolved(),
    }


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


def execute(
    run: PlannedRun,
    imageset: ImageSet,
    device: torch.device,
    cache: ArtefactCache,
    progress: bool,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """Obtain stage 1 (cached or trained), apply stage 2 if any, evaluate; returns the run's
    record, metrics and predictions."""
    started = time.perf_counter()
    method, split = run.method, run.split
    key, artefact, reused = obtain_artefact(
        stage1_config(run.config, method), method.stage1, imageset, split, device, cache, progress
    )
    stage1_done = time.perf_counter()
    logits = {name: artefact.logits[name] for name in ("val", "test")}
    stage2: dict[str, Any] | None = None
    if method.stage2:
        outcome = run_stage2(
            method.stage2, artefact, key, imageset, split, run.train_seed, device, cache
        )
        logits, stage2 = outcome.logits, {"mode": method.stage2.mode, **outcome.choices}
    stage2_done = time.perf_counter()
    counts = imageset.class_counts(split.train)
    metrics, predictions = {}, {}
    for name in ("val", "test"):
        labels = imageset.labels[split.indices(name)].numpy()
        scores = logits[name].numpy()
        metrics[name] = classification_metrics(
            scores, labels, counts, imageset.class_names, run.config["dataset"]["shot_groups"]
        )
        predictions[f"{name}_logits"], predictions[f"{name}_labels"] = scores, labels
    record = {
        "best_epoch": artefact.best_epoch,
        "history": artefact.history,
        "stage1": {
            "key": key,
            "reused": reused,
            "train_s": artefact.train_seconds,
            "rebalancing_sampler": method.stage1.sampler.name in REBALANCING_SAMPLERS,
        },
        "stage2": stage2,
        "timings": {
            "train_s": round(
                (0 if reused else artefact.train_seconds) + stage2_done - stage1_done, 3
            ),
            "stage1_s": round(stage1_done - started, 3),
            "stage2_s": round(stage2_done - stage1_done, 3),
            "eval_s": round(time.perf_counter() - stage2_done, 3),
        },
    }
    return record, metrics, predictions


def run_benchmark(options: RunOptions) -> pd.DataFrame:
    """Run every missing (method, data seed, train seed); returns the summary of those asked."""
    spec = get_spec(options.dataset)
    registry = MethodRegistry(options.methods_dir)
    methods = registry.expand(options.methods)
    settings = resolve_settings(spec, options.overrides)
    device = resolve_device(options.device)
    store = ResultsStore(options.results_dir or default_results_dir(), spec.name)
    cache = ArtefactCache()

    load_start = time.perf_counter()
    imageset = load_imageset(
        spec, int(settings["image_size"]), options.data_root, options.progress, options.skip_bad
    )
    if skipped := imageset.provenance.get("skipped"):
        tqdm.write(
            f"{spec.name}: --skip-bad left out {len(skipped)} unreadable image(s), first "
            f"{skipped[0]['path']} ({skipped[0]['error']}); all are listed in run.json."
        )
    load_seconds = time.perf_counter() - load_start
    planned = []
    for data_seed in options.data_seeds:
        split = make_split(imageset, spec.val_fraction, spec.test_fraction, data_seed)
        manifest = write_manifest(split, imageset, store.splits_dir)
        planned += [
            (
                plan_run(spec, imageset, method, split, seed, settings, options.pretrained, device),
                manifest,
            )
            for method in methods
            for seed in options.seeds
        ]
    todo = [(run, manifest) for run, manifest in planned if not store.is_done(run.run_id)]
    tqdm.write(
        f"{spec.name}: {len(imageset.labels)} images, {len(methods)} method(s), "
        f"{len(planned)} run(s): {len(planned) - len(todo)} already done, "
        f"{len(todo)} to run on {device.type} (data loaded in {load_seconds:.1f} s)."
    )
    environment = _environment()
    sweep_start, failures, stage1_seconds, trained = time.perf_counter(), 0, 0.0, 0
    bar = tqdm(todo, desc="runs", unit="run", disable=not options.progress or not todo)
    for run, manifest in bar:
        bar.set_postfix_str(run.method.name)
        record = {
            "run_id": run.run_id,
            "setting": run.setting,
            "config": run.config,
            "overrides": {k: v for k, v in options.overrides.items() if v is not None},
            "split_manifest": str(manifest),
            "data": {**imageset.provenance, "skip_bad": options.skip_bad},
            "device_name": _device_name(device),
            **environment,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            outcome, metrics, predictions = execute(run, imageset, device, cache, options.progress)
        except Exception as error:  # a failed run is recorded and the sweep goes on
            store.save_failed(
                record, f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=5)}"
            )
            tqdm.write(f"run {run.run_id} failed: {type(error).__name__}: {error}")
            failures += 1
            continue
        record |= outcome | {"finished_at": datetime.now(UTC).isoformat(timespec="seconds")}
        store.save_done(record, metrics, predictions)
        stage1 = outcome["stage1"]
        if not stage1["reused"]:
            stage1_seconds, trained = stage1_seconds + stage1["train_s"], trained + 1
        how = (
            f"stage 1 reused from cache {stage1['key']}"
            if stage1["reused"]
            else f"stage 1 trained in {stage1['train_s']:.0f} s"
        )
        tqdm.write(
            f"{run.run_id}: test BAcc {metrics['test']['balanced_accuracy']:.3f}, "
            f"Acc {metrics['test']['accuracy']:.3f} ({how})"
        )

    total = time.perf_counter() - sweep_start
    tqdm.write(
        f"{len(todo) - failures} run(s) done, {failures} failed, in {total:.0f} s, of which "
        f"{trained} stage-1 training(s) took {stage1_seconds:.0f} s; results in {store.root}"
    )
    runs = store.write_runs_csv()
    order = [method.name for method in methods] + list(registry.lists.get("all", []))
    write_summary(summarise(runs, order), store.root, f"{spec.name}: all recorded runs")
    if options.report:
        try:
            report = build_report(store.root.parent, spec.name, [m.name for m in methods])
            tqdm.write(f"report of these methods: {report.folder / 'index.html'}")
        except Exception as error:  # the runs are saved; only the report is missing
            tqdm.write(
                f"report not written ({type(error).__name__}: {error}); the runs are saved, "
                f"`bench report --dataset {spec.name}` retries."
            )
    asked = runs[runs["run_id"].isin([run.run_id for run, _ in planned])]
    return summarise(asked, order)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()})"
