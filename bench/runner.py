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
from bench.augment import Augment
from bench.data.imageset import ImageSet
from bench.data.loading import load_imageset
from bench.data.specs import DatasetSpec, get_spec
from bench.data.split import Split, make_split, write_manifest
from bench.device import resolve_device
from bench.errors import unknown_name
from bench.files import stable_hash
from bench.layout import default_results_dir, project_root
from bench.losses import LOSSES
from bench.metrics import classification_metrics
from bench.models import BACKBONES, build_classifier
from bench.recipes import MethodRegistry, Recipe
from bench.samplers import SAMPLERS
from bench.store import ResultsStore
from bench.summary import summarise, write_summary
from bench.training import Objective, TrainSettings, predict_logits, train_stage1
from bench.weighting import WEIGHTINGS

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
    methods_dir: Path | None = None
    progress: bool = True


@dataclass(frozen=True)
class PlannedRun:
    """One (method, data seed, train seed) with its resolved config and id."""

    recipe: Recipe
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
    recipe: Recipe,
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
        "method": {"name": recipe.name, "family": recipe.family, **recipe.resolved()},
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
    run_id = f"{recipe.name}-d{split.data_seed}-s{train_seed}-{stable_hash(config, 10)}"
    return PlannedRun(recipe, split, train_seed, config, run_id, setting)


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
    run: PlannedRun, imageset: ImageSet, device: torch.device, progress: bool
) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """Train and evaluate one run; returns its record, metrics and predictions."""
    started = time.perf_counter()
    recipe, settings = run.recipe, run.config["training"]
    train_idx, val_idx, test_idx = run.split.train, run.split.val, run.split.test
    counts = imageset.class_counts(train_idx)
    loss = LOSSES[recipe.loss.name](counts, **recipe.loss.params)
    weights = (
        WEIGHTINGS[recipe.weighting.name](counts, **recipe.weighting.params)
        if recipe.weighting
        else None
    )
    objective = Objective(
        loss=loss,
        sampler=SAMPLERS[recipe.sampler.name],
        class_weights=weights,
        weights_from_epoch=round(recipe.weighting_start * settings["epochs"]),
    )
    torch.manual_seed(run.train_seed)
    model = build_classifier(
        settings["backbone"],
        imageset.num_classes,
        loss.head,
        loss.head_scale,
        settings["pretrained"],
    )
    train_settings = TrainSettings(
        **{f.name: settings[f.name] for f in dataclasses.fields(TrainSettings)}
    )
    outcome = train_stage1(
        model,
        (imageset.images[train_idx], imageset.labels[train_idx]),
        (imageset.images[val_idx], imageset.labels[val_idx]),
        objective,
        train_settings,
        device,
        seed=run.train_seed,
        progress=progress,
    )
    trained = time.perf_counter()
    metrics, predictions = {}, {}
    for name, index in (("val", val_idx), ("test", test_idx)):
        logits = predict_logits(
            outcome.model, imageset.images[index], outcome.normalizer, device
        ).numpy()
        labels = imageset.labels[index].numpy()
        metrics[name] = classification_metrics(
            logits, labels, counts, imageset.class_names, run.config["dataset"]["shot_groups"]
        )
        predictions[f"{name}_logits"], predictions[f"{name}_labels"] = logits, labels
    record = {
        "best_epoch": outcome.best_epoch,
        "history": outcome.history,
        "class_weights": None if weights is None else weights.tolist(),
        "timings": {
            "train_s": round(trained - started, 3),
            "eval_s": round(time.perf_counter() - trained, 3),
        },
    }
    return record, metrics, predictions


def run_benchmark(options: RunOptions) -> pd.DataFrame:
    """Run every missing (method, data seed, train seed); returns the summary of those asked."""
    spec = get_spec(options.dataset)
    registry = MethodRegistry(options.methods_dir)
    recipes = registry.expand(options.methods)
    settings = resolve_settings(spec, options.overrides)
    device = resolve_device(options.device)
    results_dir = options.results_dir or default_results_dir()
    store = ResultsStore(results_dir, spec.name)

    load_start = time.perf_counter()
    imageset = load_imageset(spec, int(settings["image_size"]), options.data_root)
    load_seconds = time.perf_counter() - load_start
    planned = []
    for data_seed in options.data_seeds:
        split = make_split(imageset, spec.val_fraction, spec.test_fraction, data_seed)
        manifest = write_manifest(split, imageset, store.splits_dir)
        planned += [
            (
                plan_run(spec, imageset, recipe, split, seed, settings, options.pretrained, device),
                manifest,
            )
            for recipe in recipes
            for seed in options.seeds
        ]
    todo = [(run, manifest) for run, manifest in planned if not store.is_done(run.run_id)]
    tqdm.write(
        f"{spec.name}: {len(imageset.labels)} images, {len(recipes)} method(s), "
        f"{len(planned)} run(s): {len(planned) - len(todo)} already done, "
        f"{len(todo)} to run on {device.type} (data loaded in {load_seconds:.1f} s)."
    )
    environment = _environment()
    sweep_start, failures = time.perf_counter(), 0
    for run, manifest in tqdm(todo, desc="runs", unit="run", disable=not options.progress or not todo):
        record = {
            "run_id": run.run_id,
            "setting": run.setting,
            "config": run.config,
            "overrides": {k: v for k, v in options.overrides.items() if v is not None},
            "split_manifest": str(manifest),
            "data": imageset.provenance,
            "device_name": _device_name(device),
            **environment,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            outcome, metrics, predictions = execute(run, imageset, device, options.progress)
        except Exception as error:  # a failed run is recorded and the sweep goes on
            store.save_failed(
                record, f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=5)}"
            )
            tqdm.write(f"run {run.run_id} failed: {type(error).__name__}: {error}")
            failures += 1
            continue
        record |= outcome | {"finished_at": datetime.now(UTC).isoformat(timespec="seconds")}
        store.save_done(record, metrics, predictions)
        tqdm.write(
            f"{run.run_id}: test BAcc {metrics['test']['balanced_accuracy']:.3f}, "
            f"Acc {metrics['test']['accuracy']:.3f} "
            f"({record['timings']['train_s']:.0f} s)"
        )

    tqdm.write(
        f"{len(todo) - failures} run(s) done, {failures} failed, in "
        f"{time.perf_counter() - sweep_start:.0f} s; results in {store.root}"
    )
    runs = store.write_runs_csv()
    order = [recipe.name for recipe in recipes] + list(registry.lists.get("all", []))
    write_summary(summarise(runs, order), store.root, f"{spec.name}: all recorded runs")
    asked = runs[runs["run_id"].isin([run.run_id for run, _ in planned])]
    return summarise(asked, order)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()})"
