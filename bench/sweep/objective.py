"""A sweep's trial function and the pruner that watches it.

One trial evaluates the method with values drawn from its search space, through the same
`experiment.evaluate` as `bench run` and at the same training settings, once per data seed at
train seed 0, and scores it by mean validation balanced accuracy; test labels are never read.
Stage-1 epochs are reported to a pruner that stops only clear losers (see `pruner`): a median
pruner checked every epoch stopped 15 of 20 trials of a `supcon+crt` sweep, and still 14 of
20 when checked only in the second half, because a trial falls below the median at some
epoch by noise alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from bench.core.files import SESSION
from bench.experiment.experiment import Experiment, evaluate
from bench.recipes.methods import Method
from bench.sweep.space import Dimension, apply
from bench.sweep.trials import FINISHED, Surplus, mark_begun

SEED = 0  # the train seed of every trial


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
    pruner watches the stage-1 epochs of the first experiment. A trial begun when `n_trials`
    earlier ones are finished or running is `Surplus`. `storage` is the study's as opened,
    for its heartbeats (see `mark_begun`)."""

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
