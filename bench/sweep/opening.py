"""Opening a method's study for a sweep: the method, its search space and training settings,
the storage, the sampler and pruner, and the study's recorded settings checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
from tqdm import tqdm

from bench.components.settings import TrainingSettings
from bench.core.claims import join
from bench.core.errors import BenchError
from bench.core.files import ensure_writable
from bench.core.layout import default_results_dir
from bench.data.specs import DatasetSpec, get_spec
from bench.experiment.experiment import settings_for
from bench.recipes.methods import TUNED, Method, MethodRegistry
from bench.sweep.objective import pruner
from bench.sweep.options import SweepOptions
from bench.sweep.records import settle_conditions
from bench.sweep.space import Dimension, search_space
from bench.sweep.storage import open_storage
from bench.sweep.trials import SUBMITTER, fail_orphans, fail_trials_of


@dataclass(frozen=True)
class OpenStudy:
    """A study opened for a sweep, with what its trials are evaluated under: the dataset spec
    as the conditions take it (`Conditions.resolve_spec`) and the training settings."""

    study: optuna.Study
    storage: optuna.storages.BaseStorage
    folder: Path
    method: Method
    space: list[Dimension]
    spec: DatasetSpec
    settings: TrainingSettings


def open_study(options: SweepOptions) -> OpenStudy:
    """Open (or create) the study of `options.method`, with its settings recorded or checked;
    a journal study's trials left running by a killed worker are failed here, unless this is
    one of several workers (`options.worker`: their submitter decides), whose own running
    trials, left by an earlier run of its job that the cluster requeued, are failed."""
    spec = options.conditions.resolve_spec(get_spec(options.dataset))
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
    cache_dir = options.conditions.cache_dir
    ensure_writable(cache_dir, "the cache", "choose another with --cache-dir")
    join(folder.parent)
    join(cache_dir)
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
    settle_conditions(study, settings, options.data_seeds)
    if options.storage == "journal" and not options.worker:
        fail_orphans(study)
    elif options.worker not in (None, SUBMITTER):  # a worker's tag names one job: its
        fail_trials_of(study, options.worker)  # running trials are a requeued job's past
    return OpenStudy(study, storage, folder, method, space, spec, settings)
