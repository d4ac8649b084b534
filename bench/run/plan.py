"""From what `bench run` was asked to resolved runs, grouped into units of work.

The submitting process resolves everything that enters a run id — settings, split, device
type — once, here; workers receive the resolved units and only check that they arrive at the
same ids (`bench.run.work`). A unit is every run that shares one stage-1 artefact, so a stage 1 is
trained once wherever the units execute.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from bench.components.settings import TrainingSettings
from bench.core.files import stable_hash
from bench.core.layout import default_results_dir
from bench.data.imageset import ImageSet
from bench.data.loading import load_imageset
from bench.data.specs import DatasetSpec
from bench.data.split import Split, write_manifest
from bench.experiment.conditions import Conditions
from bench.experiment.experiment import Experiment, settings_for, settings_id
from bench.recipes.methods import Method
from bench.results.store import ResultsStore
from bench.stage1.artefacts import ArtefactCache
from bench.stage1.schedule import Schedule


@dataclass(frozen=True)
class RunOptions:
    """What `bench run` was asked: names, seeds, the conditions of its runs, and where the
    results go."""

    dataset: str
    methods: str = "all"
    seeds: tuple[int, ...] = (0, 1, 2)
    data_seeds: tuple[int, ...] = (0,)
    conditions: Conditions = dataclasses.field(default_factory=Conditions)
    results_dir: Path | None = None
    report: bool = True
    methods_dir: Path | None = None
    progress: bool = True
    # Only these (method, data seed, train seed) of the product above (None: all of it); a
    # study's missing cells, so that one pool of workers runs them all.
    cells: frozenset[tuple[str, int, int]] | None = None
    # Measured seconds of a stage 1 by recipe name on this dataset (a study's archive knows
    # them): the order its units start in, longest first.
    stage1_seconds: dict[str, float] = dataclasses.field(default_factory=dict)


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

    @property
    def stage1_key(self) -> str:
        """The key of the stage-1 artefact this run starts from."""
        return self.experiment.artefact_key(self.method, self.train_seed)


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


def plan(
    options: RunOptions, spec: DatasetSpec, methods: list[Method], device: torch.device
) -> list[PlannedRun]:
    """Every (method, data seed, train seed) asked (of `options.cells` when it names them),
    each in the experiment of its settings
    (image sets are loaded once per image size, splits drawn once per data seed)."""
    conditions = options.conditions
    resolved = {
        m.name: settings_for(spec, m, conditions.overrides, conditions.profile) for m in methods
    }
    for note in (n for r in resolved.values() for n in r.notes):
        tqdm.write(note)
    store = ResultsStore(options.results_dir or default_results_dir(), spec.name)
    cache = ArtefactCache(conditions.cache_dir)
    imagesets: dict[int, ImageSet] = {}
    for size in dict.fromkeys(r.settings.image_size for r in resolved.values()):
        imagesets[size] = load_imageset(
            spec,
            size,
            cache_dir=conditions.cache_dir,
            data_root=conditions.data_root,
            progress=options.progress,
            skip_bad=conditions.skip_bad,
        )
        if skipped := imagesets[size].provenance.get("skipped"):
            tqdm.write(
                f"{spec.name}: --skip-bad left out {len(skipped)} unreadable image(s), first "
                f"{skipped[0]['path']} ({skipped[0]['error']}); all are listed in run.json."
            )
    planned = []
    drawn: dict[int, list[Split]] = {size: [] for size in imagesets}
    for data_seed in options.data_seeds:
        splits = {}
        for size, imageset in imagesets.items():
            split = spec.split(imageset, data_seed)
            splits[size] = (split, write_manifest(split, imageset, store.splits_dir))
            drawn[size].append(split)
        if longtail := split.longtail:  # the same items at every image size: said once
            tqdm.write(longtail.note(f"{spec.name}, data seed {data_seed}", imageset.class_names))
        for method in methods:
            settings = resolved[method.name].settings
            split, manifest = splits[settings.image_size]
            experiment = Experiment(
                spec=spec,
                imageset=imagesets[settings.image_size],
                split=split,
                settings=settings,
                device=device,
                cache=cache,
                progress=options.progress,
                compile=conditions.compile,
            )
            planned += [
                plan_run(experiment, method, seed, manifest)
                for seed in options.seeds
                if options.cells is None or (method.name, data_seed, seed) in options.cells
            ]
    for method in methods:
        size = resolved[method.name].settings.image_size
        ran = {run.experiment.split.data_seed for run in planned if run.method.name == method.name}
        its_splits = [split for split in drawn[size] if split.data_seed in ran]
        for note in tuning_notes(method, spec, imagesets[size], its_splits):
            tqdm.write(note)
    return planned


def tuning_notes(
    method: Method, spec: DatasetSpec, imageset: ImageSet, splits: list[Split]
) -> list[str]:
    """What the test scores of a tuned `method` on `splits` must be read with: the test items
    that were validation items of the splits its values were chosen on (their labels chose
    the values, so those scores are optimistic), and tuning splits that the dataset no longer
    draws. Empty for an untuned method, or one run where it was tuned (a test split is
    disjoint from its own validation split), on a test set kept out of every pool, or on
    another dataset than the one it was tuned on."""
    if method.tuning is None or method.tuning.dataset not in (None, spec.name):
        return []
    seeds = method.tuning.data_seeds or (0,)  # sweeps that did not record theirs used seed 0
    drawn = {split.data_seed: split for split in splits}
    notes, chosen_on = [], []
    for seed in seeds:
        split = drawn.get(seed) or spec.split(imageset, seed)
        recorded = method.tuning.split_digests.get(seed)
        if recorded is not None and recorded != split.digest:
            notes.append(
                f"{method.name}: tuned on a split of data seed {seed} (digest {recorded}) that "
                f"the dataset no longer draws (now {split.digest}): its files or [split] table "
                "changed since the sweep, so its test scores cannot be vouched for."
            )
        chosen_on.append(split.val)
    validation = np.concatenate(chosen_on)
    shared = {s.data_seed: (int(np.isin(s.test, validation).sum()), len(s.test)) for s in splits}
    if leaks := {seed: counts for seed, counts in shared.items() if counts[0]}:
        counted = ", ".join(f"data seed {d}: {n} of {total}" for d, (n, total) in leaks.items())
        notes.append(
            f"{method.name}: its values were chosen on the validation items of data seed(s) "
            f"{list(seeds)}, and test items were among them "
            f"({counted}), so those test scores are optimistic."
        )
    return notes


@dataclass(frozen=True)
class WorkUnit:
    """Every run to do that shares one stage-1 artefact, resolved: what a worker needs to
    rebuild the runs (it loads the image set from the shared cache) and the ids it must
    arrive at. Picklable, so it travels to worker processes and cluster jobs."""

    stage1_key: str
    spec: DatasetSpec
    settings: TrainingSettings
    data_seed: int
    train_seed: int
    methods: tuple[Method, ...]
    run_ids: tuple[str, ...]
    manifest: Path
    conditions: Conditions  # as workers need them (`Conditions.for_workers`)
    results_dir: Path
    cost: float
    cached: bool

    @property
    def name(self) -> str:
        """A short description for progress lines and job names."""
        recipe = self.methods[0].stage1.name
        return f"{recipe}-d{self.data_seed}-s{self.train_seed}"


def by_stage1(runs: list[PlannedRun]) -> dict[str, list[PlannedRun]]:
    """The runs grouped by the stage-1 artefact they start from, in order."""
    groups: dict[str, list[PlannedRun]] = {}
    for run in runs:
        groups.setdefault(run.stage1_key, []).append(run)
    return groups


def group_units(
    runs: list[PlannedRun],
    options: RunOptions,
    results_dir: Path,
) -> list[WorkUnit]:
    """The runs grouped by stage-1 artefact, most expensive first. A stage 1 to train costs
    its measured seconds (`options.stage1_seconds`; one not measured there, their median),
    else its epochs × images × pixels; one already cached, only its stage 2s (a small
    constant per run), so the longest units start first and the last ones finish close
    together."""
    measured = options.stage1_seconds
    typical = statistics.median(measured.values()) if measured else None
    units = []
    for key, members in by_stage1(runs).items():
        first = members[0]
        experiment = first.experiment
        settings = experiment.settings
        cached = experiment.cache.has(key)
        pixels = len(experiment.split.train) * settings.image_size**2
        epochs = Schedule.plan(len(experiment.split.train), settings).epochs
        work = float(epochs * pixels)
        if typical is not None:
            work = measured.get(first.method.stage1.name, typical)
        per_run = 0.01 * work / epochs  # a stage 2: about a hundredth of a stage-1 epoch
        units.append(
            WorkUnit(
                stage1_key=key,
                spec=experiment.spec,
                settings=settings,
                data_seed=experiment.split.data_seed,
                train_seed=first.train_seed,
                methods=tuple(run.method for run in members),
                run_ids=tuple(run.run_id for run in members),
                manifest=first.manifest,
                conditions=options.conditions.for_workers(experiment.device.type),
                results_dir=results_dir,
                cost=(0.0 if cached else work) + per_run * len(members),
                cached=cached,
            )
        )
    return sorted(units, key=lambda unit: unit.cost, reverse=True)
