"""What a sweep's worker does after each trial, as callbacks of Optuna's `study.optimize`:
show the trial, stop after a run of failed trials, and wait for a place in the budget rather
than start a surplus trial. Optuna's own `MaxTrialsCallback` stops a worker once the study
has its finished trials, counted over all workers."""

from __future__ import annotations

import time
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from bench.sweep.trials import FINISHED, fail_dead_trials


class Progress:
    """Show each trial of this worker as it ends — its value, the best so far, its parameters
    (a surplus trial is not shown) — and count its finished trials on a bar that starts at the
    `finished` trials the study had."""

    def __init__(self, total: int, finished: int, show_bar: bool) -> None:
        self.bar = tqdm(total=total, initial=finished, desc="trials", disable=not show_bar)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state in FINISHED:
            self.bar.update(1)
        value = "pruned" if trial.state == TrialState.PRUNED else trial.state.name.lower()
        if trial.state == TrialState.COMPLETE:
            best = study.best_trial
            value = f"{trial.value:.4f} (best {best.value:.4f}, trial {best.number})"
        if not trial.user_attrs.get("surplus"):
            tqdm.write(f"trial {trial.number}: {value}  {trial.params}")

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()


class StopAfterFailures:
    """Stop this worker once `limit` of its trials failed in a row (a diverged trial fails;
    when every one does, the settings are to blame); any other trial, a surplus one
    included, breaks the row."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row = 0

    def reached(self) -> bool:
        """Whether `limit` trials of this worker failed in a row."""
        return self.in_a_row >= self.limit

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        failed = trial.state == TrialState.FAIL and not trial.user_attrs.get("surplus")
        self.in_a_row = self.in_a_row + 1 if failed else 0
        if self.reached():
            study.stop()


class WaitForPlace:
    """Start a trial only when the budget has a place for it: while every trial still wanted
    (`n_trials` finished, over all workers) is running in other workers, wait for them to end
    or to go stale and be failed (`fail_dead_trials`) rather than start a surplus trial; stop
    this worker once the study has its trials or the (monotonic) `deadline` has passed.

    Optuna calls callbacks only after a trial, so before a worker's first trial the same check
    is made by calling `place_open`; and Optuna's stop flag is private, so a wait is skipped
    when `stopping` (another callback's decision to stop) says so."""

    def __init__(
        self,
        n_trials: int,
        storage: optuna.storages.BaseStorage,
        heartbeat: int,
        deadline: float,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.n_trials, self.storage, self.heartbeat = n_trials, storage, heartbeat
        self.deadline, self.stopping = deadline, stopping

    def place_open(self, study: optuna.Study) -> bool:
        """Whether this worker may start a trial now, after waiting while the places left are
        all taken by running trials; False once the study has its finished trials or the
        deadline has passed."""
        said = False
        while (now := time.monotonic()) < self.deadline:
            fail_dead_trials(study, self.storage, self.heartbeat)
            states = [t.state for t in study.get_trials(deepcopy=False)]
            done, running = sum(s in FINISHED for s in states), states.count(TrialState.RUNNING)
            if done >= self.n_trials:
                return False
            if done + running < self.n_trials:
                return True
            if not said:
                tqdm.write(
                    f"sweep {study.study_name}: waiting for {running} running trial(s) of "
                    "other workers to finish or go stale"
                )
                said = True
            time.sleep(min(5, self.heartbeat, self.deadline - now))  # they may yet end or fail
        return False

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not self.stopping() and not self.place_open(study):
            study.stop()
