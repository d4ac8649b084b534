"""A study's best trial written as a tuned recipe that `bench run` evaluates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from bench.core.errors import BenchError
from bench.core.files import toml_text, write_text_atomic
from bench.recipes.methods import Method
from bench.sweep.records import recorded_settings
from bench.sweep.space import applied


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
