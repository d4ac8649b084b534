"""`bench sweep`: tune a method's recipe on the validation split with Optuna.

One trial evaluates the method with values drawn from its search space, through the same
`experiment.evaluate` as `bench run` and at the same training settings (the dataset spec's,
with the same command-line overrides), once per data seed at train seed 0, and scores it by
mean validation balanced accuracy; test labels are never read. Stage-1 epochs are reported to
a pruner that stops only clear losers (see `pruner`): a median pruner checked every epoch
stopped 15 of 20 trials of a `supcon+crt` sweep, and still 14 of 20 when checked only in the
second half, because a trial falls below the median at some epoch by noise alone. Studies
live in a storage that several workers may share; rerunning a sweep resumes its study up to
the requested number of finished trials, at the settings it was started with.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from optuna.visualization import matplotlib as views
from tqdm import tqdm

from bench.components.settings import TrainingSettings
from bench.core.claims import join
from bench.core.device import resolve_device
from bench.core.errors import BenchError, TrainingDiverged
from bench.core.files import SESSION, ensure_writable, toml_text, write_text_atomic
from bench.core.layout import default_results_dir
from bench.data.cache import cache_root
from bench.data.loading import load_imageset
from bench.data.specs import get_spec
from bench.data.split import Split, write_manifest
from bench.experiment.conditions import Conditions
from bench.experiment.experiment import Experiment, evaluate, settings_for
from bench.recipes.methods import TUNED, Method, MethodRegistry
from bench.run.store import ResultsStore
from bench.stage1.artefacts import ArtefactCache
from bench.stage1.schedule import Schedule
from bench.sweep.space import Dimension, applied, apply, search_space

SEED = 0  # the train seed of every trial
SUBMITTER = "submitter"  # the worker tag of the process that starts `bench sweep --jobs N`
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class Surplus(Exception):
    """A trial that another worker's trial made unnecessary (both started for the last place
    in the budget); it is recorded as failed and not counted."""


@dataclass(frozen=True)
class SweepOptions:
    """What `bench sweep` was asked."""

    dataset: str
    method: str
    n_trials: int = 20
    timeout: float | None = None
    storage: str | None = None
    space: Path | None = None
    seed: int | None = None
    data_seeds: tuple[int, ...] = (0,)
    conditions: Conditions = field(default_factory=Conditions)
    heartbeat: int = 60
    results_dir: Path | None = None
    methods_dir: Path | None = None
    progress: bool = True
    worker: str | None = None  # the tag of one of several workers started by one `bench sweep`


def masked(text: str, url: str | None = None) -> str:
    """`text` with the password of a database URL (`url`, else one in `text`) replaced by
    `***` — in `user:password@host`, up to the host's `@`, and in a `password=` parameter — so
    that no error message or log line shows it."""
    secrets = []
    for source in (url or "", text):
        if found := re.search(r"://[^:/@\s]*:(\S*)@[^@/?\s]*", source):
            secrets.append(found.group(1))
        secrets += re.findall(r"[?&]password=([^&\s]+)", source)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def open_storage(
    storage: str | None, folder: Path, stem: str, heartbeat: int
) -> optuna.storages.BaseStorage:
    """The study storage: SQLite under `folder` (default), a journal file (`journal`), or any
    database URL Optuna accepts. Database storages send heartbeats, so the trial of a killed
    worker is marked failed after twice `heartbeat` seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    if storage == "journal":
        backend = JournalFileBackend(str(folder / f"{stem}.journal"))
        return optuna.storages.JournalStorage(backend)
    url = f"sqlite:///{folder / stem}.db" if storage in (None, "sqlite") else storage
    if url.startswith("postgresql://"):  # the psycopg 3 driver, whatever SQLAlchemy's default
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        with warnings.catch_warnings():  # heartbeats are marked experimental by Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat
            )
    except (ImportError, ModuleNotFoundError) as error:
        hint = ' For PostgreSQL: pip install -e ".[postgres]".' if "postgresql" in url else ""
        raise BenchError(
            f"storage {masked(url)!r} needs a database driver that is not installed "
            f"({masked(str(error), url)}).{hint}"
        ) from error
    except Exception as error:  # SQLAlchemy raises many kinds for a bad URL or server
        raise BenchError(
            f"cannot open storage {masked(url)!r}: {type(error).__name__}: "
            f"{masked(str(error).strip().splitlines()[0], url)}"
        ) from error


def pruner(epochs: int) -> optuna.pruners.BasePruner:
    """Stop a trial whose stage-1 validation score is in the bottom quarter of earlier trials'
    at the same epoch, checked at a few epochs of the second half only, after 5 trials.

    Optuna's percentile is the share of trials *kept*: 75 prunes the bottom quarter (25 would
    keep only the top quarter; it pruned 14 of 20 trials of a `supcon+crt` sweep)."""
    return optuna.pruners.PercentilePruner(
        75.0,
        n_startup_trials=5,
        n_warmup_steps=epochs // 2,
        interval_steps=max(1, epochs // 4),
    )


def _suggest(trial: optuna.Trial, dimension: Dimension) -> Any:
    """Draw the value of one dimension through the trial's public suggest API."""
    dist = dimension.distribution
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(dimension.path, dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return trial.suggest_int(dimension.path, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, optuna.distributions.FloatDistribution)
    return trial.suggest_float(dimension.path, dist.low, dist.high, step=dist.step, log=dist.log)


def make_objective(
    experiments: list[Experiment],
    method: Method,
    space: list[Dimension],
    n_trials: int,
    worker: str = SESSION,
    storage: optuna.storages.BaseStorage | None = None,
) -> Callable[[optuna.Trial], float]:
    """The trial function: `method` with drawn values, evaluated in each experiment (one per
    data seed) at train seed 0; its value is the mean validation balanced accuracy. The
    pruner watches the stage-1 epochs of the first experiment. `storage` is the study's as
    opened, for its heartbeats (see `mark_begun`)."""

    def objective(trial: optuna.Trial) -> float:
        mark_begun(trial, worker, storage)
        earlier = trial.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        if sum(t.number < trial.number for t in earlier) >= n_trials:
            trial.set_user_attr("surplus", True)
            raise Surplus(f"the study already has {n_trials} trials")
        tuned = apply(method, {d.path: _suggest(trial, d) for d in space})

        def report(epoch: int, score: float) -> None:
            trial.report(score, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        scores = []
        for index, experiment in enumerate(experiments):
            watched = report if index == 0 else None
            evaluation = evaluate(tuned, experiment, SEED, splits=("val",), on_epoch=watched)
            scores.append(evaluation.metrics["val"]["balanced_accuracy"])
        return float(np.mean(scores))

    return objective


def mark_begun(
    trial: optuna.Trial, worker: str, storage: optuna.storages.BaseStorage | None
) -> None:
    """The objective's first step: mark `trial` as begun by `worker` (see `fail_trials_of`),
    after storing its first heartbeat in `storage`, the study's storage as opened. Optuna's
    heartbeat thread starts alongside the objective, so a worker killed before that thread's
    first write left a begun trial without a heartbeat, which neither `fail_stale_trials` nor
    `_fail_unstarted` would ever fail, and a resumed sweep waited for it forever."""
    if isinstance(storage, optuna.storages.RDBStorage) and storage.get_heartbeat_interval():
        study_id = storage.get_study_id_from_name(trial.study.study_name)
        storage.record_heartbeat(
            storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        )
    trial.set_user_attr("worker", worker)  # first: a begun trial always names its worker
    trial.set_user_attr("began", True)


def fail_dead_trials(
    study: optuna.Study, storage: optuna.storages.BaseStorage, heartbeat: int
) -> None:
    """Fail the running trials of killed workers: those that never began and are older than
    twice `heartbeat` seconds (`_fail_unstarted`), and in a database study (`storage`, with
    heartbeats every `heartbeat` seconds) those whose last heartbeat is older than that. A
    journal has no heartbeats: the begun trials of a dead worker are failed by its tag (see
    `fail_trials_of`)."""
    if isinstance(storage, optuna.storages.RDBStorage):
        with warnings.catch_warnings():  # marked experimental by Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    _fail_unstarted(study, 2 * heartbeat)


def _fail_unstarted(study: optuna.Study, grace: float) -> None:
    """Fail running trials that never reached the objective and are older than `grace`
    seconds: their worker died between creating the trial and the objective's first step
    (`mark_begun`, milliseconds later), so neither a heartbeat nor a worker tag reveals them."""
    now = datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start
        if (
            not trial.user_attrs.get("began")
            and started
            and (now - started).total_seconds() > grace
        ):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


def fail_orphans(study: optuna.Study) -> None:
    """A journal study has no heartbeats: trials left running by a killed worker are failed
    when the next sweep starts (so separate journal workers start one at a time; the
    workers of one `bench sweep --jobs N` are covered by `fail_trials_of`)."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


def fail_trials_of(study: optuna.Study, worker: str) -> int:
    """Fail the running trials of `worker`, which has ended (a journal study has no heartbeat
    to reveal them); returns how many."""
    failed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("worker") == worker:
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            failed += 1
    return failed


# What a study recorded before stage 1 had a step floor and a checkpoint rule trained under
# exactly these (the schedule was the epochs', and the best-validation epoch was kept).
BEFORE_RULES = {"min_steps": 0, "checkpoint": "best"}


def recorded_settings(study: optuna.Study) -> dict[str, Any]:
    """The training settings a study's trials were scored under (older studies' records
    completed with `BEFORE_RULES`)."""
    return {**BEFORE_RULES, **(study.user_attrs.get("settings") or {})}


def _settle_conditions(
    study: optuna.Study, settings: TrainingSettings, data_seeds: tuple[int, ...]
) -> None:
    """Record the training settings and data seeds a study's trials are scored under, or,
    resuming, refuse other ones: trials at different settings are not comparable."""
    wanted, seeds = settings.as_dict(), list(data_seeds)
    if "settings" not in study.user_attrs:
        if study.get_trials(deepcopy=False):
            raise BenchError(
                f"study {study.study_name} has trials from a version that did not record their "
                "settings; tune in a new storage (--storage), or delete the study."
            )
        study.set_user_attr("settings", wanted)
        study.set_user_attr("data_seeds", seeds)
        return
    recorded = recorded_settings(study)
    differ = {k: recorded.get(k) for k, v in wanted.items() if recorded.get(k) != v}
    if study.user_attrs.get("data_seeds") != seeds:
        differ["data_seeds"] = study.user_attrs.get("data_seeds")
    if differ:
        raise BenchError(
            f"study {study.study_name} was run at {differ}; resume it with those settings, "
            "or tune under new ones in another storage (--storage)."
        )


def _settle_splits(study: optuna.Study, splits: list[Split]) -> None:
    """Record the digest of each data seed's split, the items the trials are scored on, or,
    resuming, refuse splits that differ: the dataset's files or its `[split]` table changed,
    and trials scored on other validation items are not comparable."""
    drawn = {str(split.data_seed): split.digest for split in splits}
    if "split_digests" not in study.user_attrs:
        if study.get_trials(deepcopy=False, states=FINISHED):
            raise BenchError(
                f"study {study.study_name} has trials from a version that did not record their "
                "splits; tune in a new storage (--storage), or delete the study."
            )
        study.set_user_attr("split_digests", drawn)
        return
    recorded = study.user_attrs["split_digests"]
    if recorded != drawn:
        raise BenchError(
            f"study {study.study_name} scored its trials on the splits {recorded} "
            f"(data seed: digest), but the splits drawn now are {drawn}: the dataset's files "
            "or its [split] table changed. Tune in a new storage (--storage), or delete the "
            "study."
        )


@dataclass(frozen=True)
class OpenStudy:
    """A study opened for a sweep, with what its trials are evaluated under."""

    study: optuna.Study
    storage: optuna.storages.BaseStorage
    folder: Path
    method: Method
    space: list[Dimension]
    settings: TrainingSettings


def open_study(options: SweepOptions) -> OpenStudy:
    """Open (or create) the study of `options.method`, with its settings recorded or checked;
    a journal study's trials left running by a killed worker are failed here, unless this is
    one of several workers (`options.worker`: their submitter decides), whose own running
    trials, left by an earlier run of its job that the cluster requeued, are failed."""
    spec = get_spec(options.dataset)
    registry = MethodRegistry(options.methods_dir)
    method = registry.get(options.method)
    if method.name.startswith(TUNED):
        raise BenchError(f"{method.name} is already tuned; sweep the method it came from.")
    space = search_space(method, options.space)
    resolved = settings_for(spec, method, options.conditions.overrides, options.conditions.profile)
    for note in resolved.notes:
        tqdm.write(note)
    settings = resolved.settings
    folder = (options.results_dir or default_results_dir()) / spec.name / "sweeps"
    ensure_writable(folder, "the sweeps folder", "choose another with --results-dir")
    ensure_writable(cache_root(), "the cache", "choose another with --cache-dir")
    join(folder.parent)
    join(cache_root())
    storage = open_storage(options.storage, folder, method.slug, options.heartbeat)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"{spec.name}/{method.name}",
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=options.seed),
        pruner=pruner(settings.epochs),
        load_if_exists=True,
    )
    _settle_conditions(study, settings, options.data_seeds)
    if options.storage == "journal" and not options.worker:
        fail_orphans(study)
    elif options.worker not in (None, SUBMITTER):  # a worker's tag names one job: its
        fail_trials_of(study, options.worker)  # running trials are a requeued job's past
    return OpenStudy(study, storage, folder, method, space, settings)


def run_sweep(options: SweepOptions) -> tuple[optuna.Study, Path]:
    """Run (or resume) the study of one method until it has `n_trials` finished trials or the
    timeout passes; returns the study and the folder of its files."""
    opened = open_study(options)
    study, storage, folder = opened.study, opened.storage, opened.folder
    method, space, settings = opened.method, opened.space, opened.settings
    spec = get_spec(options.dataset)
    conditions = options.conditions
    device = resolve_device(conditions.device)
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    todo = max(0, options.n_trials - finished)
    tqdm.write(
        f"sweep {study.study_name}: {len(space)} parameter(s), {finished} trial(s) finished, "
        f"{todo} to go (objective: validation balanced accuracy)"
    )
    if todo:
        imageset = load_imageset(spec, settings.image_size, conditions.data_root, options.progress)
        splits = [spec.split(imageset, data_seed) for data_seed in options.data_seeds]
        _settle_splits(study, splits)
        # Trials report every epoch the schedule runs, which the step floor may stretch.
        study.pruner = pruner(Schedule.plan(len(splits[0].train), settings).epochs)
        store = ResultsStore(options.results_dir or default_results_dir(), spec.name)
        for split in splits:  # the items behind each recorded digest, as `bench run` saves them
            write_manifest(split, imageset, store.splits_dir)
        cache = ArtefactCache()
        experiments = [
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
        objective = make_objective(
            experiments, method, space, options.n_trials, options.worker or SESSION, storage
        )
        bar = tqdm(
            total=options.n_trials, initial=finished, desc="trials", disable=not options.progress
        )

        def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if trial.state in FINISHED:
                bar.update(1)
            value = "pruned" if trial.state == TrialState.PRUNED else trial.state.name.lower()
            if trial.state == TrialState.COMPLETE:
                best = study.best_trial
                value = f"{trial.value:.4f} (best {best.value:.4f}, trial {best.number})"
            if not trial.user_attrs.get("surplus"):
                tqdm.write(f"trial {trial.number}: {value}  {trial.params}")

        deadline = time.monotonic() + options.timeout if options.timeout else math.inf
        diverged, waiting = 0, False
        while time.monotonic() < deadline and diverged < options.n_trials:
            fail_dead_trials(study, storage, options.heartbeat)
            states = [t.state for t in study.get_trials(deepcopy=False)]
            done, running = sum(s in FINISHED for s in states), states.count(TrialState.RUNNING)
            if done >= options.n_trials:
                break
            if done + running >= options.n_trials:
                if not waiting:
                    tqdm.write(
                        f"sweep {study.study_name}: waiting for {running} running trial(s) of "
                        "other workers to finish or go stale"
                    )
                waiting = True
                time.sleep(min(5, options.heartbeat))  # others' trials may yet fail or end
                continue
            waiting = False
            study.optimize(
                objective,
                n_trials=1,
                timeout=None if deadline == math.inf else deadline - time.monotonic(),
                callbacks=[progress],
                catch=(Surplus, TrainingDiverged),  # a diverged trial fails; others go on
            )
            last = study.get_trials(deepcopy=False)[-1]
            failed = last.state == TrialState.FAIL and not last.user_attrs.get("surplus")
            diverged = diverged + 1 if failed else 0
        bar.close()
        if diverged >= options.n_trials:
            tqdm.write(
                f"sweep {study.study_name}: {diverged} trial(s) of this worker failed in a row; "
                "stopped (see each trial's error above: the settings may make training diverge)"
            )
    return study, folder


def export_best(study: optuna.Study, method: Method, dataset: str, folder: Path) -> Path:
    """Write the best trial as `folder/tuned/<method>-<dataset>.toml`, with its provenance."""
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        raise BenchError(f"study {study.study_name} has no completed trial to export.")
    best = study.best_trial
    raws = applied(method, best.params)
    for raw in raws:
        mine = {k: v for k, v in best.params.items() if k.partition(".")[0] in raw}
        raw["description"] = (
            f"Tuned on {dataset} (trial {best.number}): {mine}. {raw['description']}"
        )
    name = f"{method.name}-{dataset}"
    document: dict[str, Any] = {
        "description": f"{method.name} tuned on {dataset}: {best.params}",
        "reference": "bench sweep (Optuna TPE, percentile pruning); values chosen on validation",
        "tuned": {
            "method": method.name,
            "dataset": dataset,
            "study": study.study_name,
            "trial": best.number,
            "value": best.value,
            "objective": "mean validation balanced accuracy over the data seeds, train seed 0",
            "data_seeds": study.user_attrs["data_seeds"],
            "split_digests": study.user_attrs.get("split_digests", {}),
            "finished_trials": len(completed),
            "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        # A weights file is the command line's to give (--weights), not a recipe's.
        "settings": {k: v for k, v in recorded_settings(study).items() if k != "weights"},
        "stage1_recipe": raws[0],
    }
    if len(raws) > 1:
        document["stage2_recipe"] = raws[1]
    path = folder / "tuned" / f"{name}.toml"
    write_text_atomic(path, toml_text(document))
    return path


def save_plots(study: optuna.Study, folder: Path) -> tuple[list[Path], list[str]]:
    """Optimisation history, parameter importances and parallel coordinates as PNGs beside
    the study; returns the files and why any could not be drawn."""
    folder.mkdir(parents=True, exist_ok=True)
    written, skipped = [], []
    plots: dict[str, Callable[[optuna.Study], Any]] = {
        "history": views.plot_optimization_history,
        "importances": views.plot_param_importances,
        "parallel": views.plot_parallel_coordinate,
    }
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():  # these views are marked experimental by Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = plot(study)
        except (ValueError, RuntimeError) as error:
            skipped.append(f"{name}: {error}")
            continue
        figure = np.atleast_1d(axes).flat[0].figure
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=120, bbox_inches="tight")
        written.append(path)
        plt.close(figure)
    return written, skipped
