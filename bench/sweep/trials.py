"""Trials shared by several workers: which worker began a trial, which trial is surplus, and
which running trials belong to workers that died (failed, so that nobody waits on them)."""

from __future__ import annotations

import warnings
from datetime import datetime

import optuna
from optuna.trial import TrialState

SUBMITTER = "submitter"  # the worker tag of the process that starts `bench sweep --jobs N`
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # the trials a sweep's budget counts


class Surplus(Exception):
    """A trial that another worker's trial made unnecessary (both started for the last place
    in the budget); it is recorded as failed and not counted."""


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
