"""One evaluation path: a method evaluated in an experiment.

An experiment is one dataset at one split, with one set of training settings, on one device,
with one stage-1 cache. `evaluate(method, experiment, train_seed)` obtains the method's stage 1
(trained once per key, then shared through the cache), applies its stage 2 and scores the
result. `bench run` and `bench sweep` both evaluate through here, so a sweep tunes under the
very settings a run evaluates.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.components.catalogue import SAMPLERS
from bench.components.metrics import classification_metrics
from bench.components.models import check_backbone
from bench.components.settings import ResolvedSettings, TrainingSettings, resolve_settings
from bench.core.errors import BenchError, TrainingDiverged
from bench.core.files import stable_hash
from bench.data.imageset import ImageSet
from bench.data.specs import DatasetSpec
from bench.data.split import KEPT_SPLITS, Split
from bench.recipes.methods import Method, MethodRegistry
from bench.stage1.artefacts import ArtefactCache, stage1_key
from bench.stage1.augment import Augment
from bench.stage1.job import Stage1Job, obtain_artefact
from bench.stage2.decoupled import run_stage2

SCORED_SPLITS = ("val", "test")


def dataset_block(spec: DatasetSpec) -> dict[str, Any]:
    """What a dataset spec decides about a run (its name, parameters, split fractions, shot
    groups, and the source splits it keeps when not the default ones): known without loading
    the data."""
    block = {
        "name": spec.name,
        "params": spec.params,
        "val_fraction": spec.val_fraction,
        "test_fraction": spec.test_fraction,
        "shot_groups": spec.shot_groups,
    }
    if spec.kept_splits != KEPT_SPLITS:  # runs drawn under the default keep their ids
        block["kept_splits"] = list(spec.kept_splits)
    if spec.longtail_ratio is not None:  # likewise runs without the long-tailed protocol
        block["longtail_ratio"] = spec.longtail_ratio
    return block


def training_block(settings: TrainingSettings) -> dict[str, Any]:
    """The recorded training settings, with the augmentation they train under and, when the
    weights come from a file, that file's digest (its content decides the result)."""
    augment = Augment.for_orientation(settings.orientation)
    block = {**settings.as_dict(), "augment": augment.as_dict()}
    if settings.weights:
        block["weights_digest"] = weights_digest(settings.weights)
    return block


@functools.cache
def _digest(path: str, size: int, mtime: float) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:32]


def weights_digest(path: str) -> str:
    """The digest of a weights file's content (computed once per file version and process;
    its name plays no part)."""
    stat = Path(path).stat()
    return _digest(path, stat.st_size, stat.st_mtime)


def settings_id(spec: DatasetSpec, settings: TrainingSettings) -> str:
    """A short digest of a dataset spec and training settings: runs with the same id were made
    under the same settings (the report shows one id per method by default)."""
    return stable_hash({"dataset": dataset_block(spec), "training": training_block(settings)}, 8)


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """Where methods are evaluated: a dataset at one split, training settings, a device and
    the stage-1 cache."""

    spec: DatasetSpec
    imageset: ImageSet
    split: Split
    settings: TrainingSettings
    device: torch.device
    cache: ArtefactCache
    progress: bool = False
    compile: bool = False  # torch.compile stage 1 (not in the config: same result, faster)

    def config(self, method: Method, train_seed: int) -> dict[str, Any]:
        """Everything that changes the result of `method` at `train_seed` here: the run's
        record (hashed into its id), never read back by code."""
        return {
            "dataset": {
                **dataset_block(self.spec),
                "fingerprint": self.imageset.fingerprint,
                "classes": list(self.imageset.class_names),
            },
            "split": {"data_seed": self.split.data_seed, "hash": self.split.digest},
            "method": method.resolved(),
            "training": training_block(self.settings),
            "train_seed": train_seed,
            "device": self.device.type,
        }

    def job(self, method: Method, train_seed: int) -> Stage1Job:
        """The stage-1 training of `method` at `train_seed` here."""
        return Stage1Job(
            method.stage1,
            self.imageset,
            self.split,
            self.settings,
            train_seed,
            self.device,
            self.compile,
        )

    def artefact_key(self, method: Method, train_seed: int) -> str:
        """The cache key of the method's stage 1: its recipe, not its stage 2, so every
        stage-2 method on one stage-1 recipe shares it."""
        config = self.config(method, train_seed)
        del config["method"]
        return stage1_key({**config, "stage1": method.stage1.resolved()})


@dataclass(frozen=True)
class Evaluation:
    """A method's scores per split, its logits and labels, and what its record adds to
    `run.json` (stage-1 provenance, stage-2 choices, timings)."""

    metrics: dict[str, dict[str, Any]]
    predictions: dict[str, np.ndarray]
    record: dict[str, Any]


def evaluate(
    method: Method,
    experiment: Experiment,
    train_seed: int,
    *,
    splits: tuple[str, ...] = SCORED_SPLITS,
    on_epoch: Callable[[int, float], None] | None = None,
) -> Evaluation:
    """Stage 1 (from the cache, or trained and cached), stage 2 if any, then the metrics of
    `splits` (a sweep scores `val` alone: it never reads test labels). `on_epoch` is called
    with each stage-1 epoch's validation balanced accuracy when stage 1 trains."""
    started = time.perf_counter()
    job = experiment.job(method, train_seed)
    key = experiment.artefact_key(method, train_seed)
    description = {
        "dataset": experiment.spec.name,
        "stage1": method.stage1.name,
        "data_seed": experiment.split.data_seed,
        "train_seed": train_seed,
    }
    artefact, reused = obtain_artefact(
        job, key, experiment.cache, description, experiment.progress, on_epoch
    )
    stage1_done = time.perf_counter()
    logits = {name: artefact.logits[name] for name in splits}
    stage2: dict[str, Any] | None = None
    if method.stage2:
        outcome = run_stage2(method.stage2, artefact, key, job, experiment.cache)
        logits = {name: outcome.logits[name] for name in splits}
        stage2 = {"mode": method.stage2.mode, **outcome.choices}
    stage2_done = time.perf_counter()
    for name, values in logits.items():
        if not bool(torch.isfinite(values).all()):
            stage = f"stage 2 ({method.stage2.name})" if method.stage2 else "stage 1"
            raise TrainingDiverged(f"{stage} gave non-finite {name} logits")
    counts = experiment.imageset.class_counts(experiment.split.train)
    metrics, predictions = {}, {}
    for name in splits:
        labels = job.labels(name).numpy()
        scores = logits[name].numpy()
        metrics[name] = classification_metrics(
            scores,
            labels,
            counts,
            experiment.imageset.class_names,
            experiment.spec.shot_groups,
            ordinal=experiment.spec.ordinal,
        )
        predictions[f"{name}_logits"], predictions[f"{name}_labels"] = scores, labels
    record = {
        "kept_epoch": artefact.kept_epoch,
        "history": artefact.history,
        "stage1": {
            "key": key,
            "checkpoint": experiment.settings.checkpoint,
            "schedule": artefact.schedule,
            "reused": reused,
            "train_s": artefact.train_seconds,
            "compiled": artefact.compiled,
            "rebalancing_sampler": SAMPLERS.meta(method.stage1.sampler.name).rebalancing,
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
    return Evaluation(metrics, predictions, record)


def settings_for(
    spec: DatasetSpec,
    method: Method,
    overrides: dict[str, Any] | None = None,
    profile: str | None = None,
) -> ResolvedSettings:
    """The training settings `method` runs at on `spec`: built-in defaults < the spec's
    `[training]` with its `profile` < the settings its stage-1 recipe fixes (`[training]`: a
    method's paper fixes them, so they hold on every dataset and profile) < the method's
    tuned settings < `overrides` (the command line, which always has the last word)."""
    tuned = method.tuning.settings if method.tuning else None
    defaults = spec.training_for(profile)
    if tuned and profile in spec.profiles:
        clash = {k: tuned[k] for k, v in spec.profiles[profile].items() if tuned.get(k, v) != v}
        if clash:
            raise BenchError(
                f"{method.name} was tuned at {clash}, which profile {profile!r} sets otherwise; "
                f"tune it at this profile (bench sweep --profile {profile} --export) or run it "
                "without --profile."
            )
    resolved = resolve_settings(defaults, tuned, overrides, method.name, method.stage1.training)
    settings = resolved.settings
    check_backbone(settings.backbone, settings.image_size, settings.pretrained, settings.weights)
    return resolved


def current_settings_ids(
    spec: DatasetSpec,
    registry: MethodRegistry,
    names: Iterable[str],
    overrides: dict[str, Any] | None = None,
    profile: str | None = None,
) -> dict[str, str]:
    """The settings id the runs of each named method have at the current defaults and
    `overrides`; a method the registry no longer knows (a removed tuned recipe) is left out."""
    ids = {}
    for name in names:
        try:
            method = registry.get(name)
        except BenchError:
            continue
        ids[name] = settings_id(spec, settings_for(spec, method, overrides, profile).settings)
    return ids
