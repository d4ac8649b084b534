"""One worker's sweep of one method: its study opened, its experiments prepared, and trials
run by one `study.optimize` with the callbacks of `bench.sweep.callbacks`.

Studies live in a storage that several workers may share; rerunning a sweep resumes its study
up to the requested number of finished trials, at the settings it was started with.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import optuna
import torch
from optuna.study import MaxTrialsCallback
from tqdm import tqdm

from bench.core.device import resolve_device
from bench.core.errors import TrainingDiverged
from bench.core.files import SESSION
from bench.core.layout import default_results_dir
from bench.data.loading import load_imageset
from bench.data.split import write_manifest
from bench.experiment.experiment import Experiment
from bench.results.store import ResultsStore
from bench.stage1.artefacts import ArtefactCache
from bench.stage1.schedule import Schedule
from bench.sweep.callbacks import Progress, StopAfterFailures, WaitForPlace
from bench.sweep.objective import make_objective, pruner
from bench.sweep.opening import OpenStudy, open_study
from bench.sweep.options import SweepOptions
from bench.sweep.records import settle_splits
from bench.sweep.trials import FINISHED, Surplus


def run_sweep(options: SweepOptions) -> tuple[optuna.Study, Path]:
    """Run (or resume) the study of one method until it has `n_trials` finished trials or the
    timeout passes; returns the study and the folder of its files."""
    opened = open_study(options)
    study = opened.study
    device = resolve_device(options.conditions.device)  # refused even with no trial to run
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    todo = max(0, options.n_trials - finished)
    tqdm.write(
        f"sweep {study.study_name}: {len(opened.space)} parameter(s), {finished} trial(s) "
        f"finished, {todo} to go (objective: validation balanced accuracy)"
    )
    if todo:
        _optimise(opened, options, finished, device)
    return study, opened.folder


def _experiments(
    opened: OpenStudy, options: SweepOptions, device: torch.device
) -> list[Experiment]:
    """The experiments a trial is evaluated in, one per data seed, with the study bound to
    their splits (see `settle_splits`) and its pruner to the epochs their schedule runs."""
    spec, settings, conditions = opened.spec, opened.settings, options.conditions
    imageset = load_imageset(
        spec,
        settings.image_size,
        cache_dir=conditions.cache_dir,
        data_root=conditions.data_root,
        progress=options.progress,
    )
    splits = [spec.split(imageset, data_seed) for data_seed in options.data_seeds]
    for split in splits:
        if split.longtail:
            where = f"{spec.name}, data seed {split.data_seed}"
            tqdm.write(split.longtail.note(where, imageset.class_names))
    settle_splits(opened.study, splits)
    # Trials report every epoch the schedule runs, which the step floor may stretch.
    opened.study.pruner = pruner(Schedule.plan(len(splits[0].train), settings).epochs)
    store = ResultsStore(options.results_dir or default_results_dir(), spec.name)
    for split in splits:  # the items behind each recorded digest, as `bench run` saves them
        write_manifest(split, imageset, store.splits_dir)
    cache = ArtefactCache(conditions.cache_dir)
    return [
        Experiment(
            spec=spec,
            imageset=imageset,
            split=split,
            settings=settings,
            device=device,
            cache=cache,
            compile=conditions.compile,
        )
        for split in splits
    ]


def _optimise(
    opened: OpenStudy, options: SweepOptions, finished: int, device: torch.device
) -> None:
    """Run trials until the study has `options.n_trials` finished ones (over all workers),
    this worker's trials have failed `n_trials` times in a row, or the timeout passes."""
    study, n_trials = opened.study, options.n_trials
    worker = options.worker or SESSION
    experiments = _experiments(opened, options, device)
    objective = make_objective(
        experiments, opened.method, opened.space, n_trials, worker, opened.storage
    )
    deadline = time.monotonic() + options.timeout if options.timeout else math.inf
    progress = Progress(n_trials, finished, options.progress)
    failures = StopAfterFailures(n_trials)
    place = WaitForPlace(n_trials, opened.storage, options.heartbeat, deadline, failures.reached)
    try:
        if place.place_open(study):
            study.optimize(
                objective,
                timeout=None if deadline == math.inf else max(0, deadline - time.monotonic()),
                catch=(Surplus, TrainingDiverged),  # a diverged trial fails; others go on
                callbacks=[progress, MaxTrialsCallback(n_trials, FINISHED), failures, place],
            )
    finally:
        progress.close()
    if failures.reached():
        tqdm.write(
            f"sweep {study.study_name}: {failures.in_a_row} trial(s) of this worker failed in "
            "a row; stopped (see each trial's error above: the settings may make training "
            "diverge)"
        )
