"""What a study records of how its trials are scored — the training settings, the data seeds
and each seed's split — and the refusal to resume it under others: trials scored under
different conditions are not comparable."""

from __future__ import annotations

from typing import Any

import optuna

from bench.components.settings import TrainingSettings
from bench.core.errors import BenchError
from bench.data.split import Split
from bench.sweep.trials import FINISHED

# What a study recorded before stage 1 had a step floor and a checkpoint rule trained under
# exactly these (the schedule was the epochs', and the best-validation epoch was kept).
BEFORE_RULES = {"min_steps": 0, "checkpoint": "best"}


def recorded_settings(study: optuna.Study) -> dict[str, Any]:
    """The training settings a study's trials were scored under (older studies' records
    completed with `BEFORE_RULES`)."""
    return {**BEFORE_RULES, **(study.user_attrs.get("settings") or {})}


def settle_conditions(
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


def settle_splits(study: optuna.Study, splits: list[Split]) -> None:
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
