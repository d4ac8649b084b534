"""Outlier runs: a run far below the other runs of its method is named, not averaged away."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

OUTLIER_GAP = 0.10
"""How far (as a fraction: 0.10 is 10 percentage points) a run's test balanced accuracy must be
below the median of its method's runs to be flagged. A mean ± std over seeds hides one bad run
(a stage 1 that kept an early epoch, a collapsed seed) in a wider std; such a run is shown by
name instead. The median is the yardstick because it is robust to the outlier itself: one bad
run of three moves the mean towards it but leaves the median at a good run. 10 points is well
beyond the seed-to-seed spread of a healthy method (a few points), so a flagged run is worth
reading, not noise.

A run is flagged when it is *more* than OUTLIER_GAP below (a run exactly 10.0 below is not;
float noise of the subtraction is ignored). Every method with at least two runs is checked: the
median of two runs is their mean, so of two runs more than 20 points apart the lower one is
flagged (which of the two is "wrong" cannot be told, but a gap that wide is worth showing). A
method with a single run has nothing to be compared with and is never flagged."""

TOLERANCE = 1e-9  # below the precision of any balanced accuracy; absorbs float subtraction noise

COLUMNS = [
    "data_seed",
    "train_seed",
    "run_id",
    "kept_epoch",
    "stage1_epochs",
    "balanced_accuracy",
    "method_median",
    "gap",
    "n_runs",
]


def find_outliers(
    runs: pd.DataFrame, by: Sequence[str] = ("method", "variant"), gap: float = OUTLIER_GAP
) -> pd.DataFrame:
    """The done runs of `runs` whose test balanced accuracy is more than `gap` below the median
    of the runs sharing their `by` columns (a method at one setting, over every data seed and
    train seed in `runs`). One row per outlier: the `by` columns, then COLUMNS (fractions, as in
    the runs table; `gap` is the median minus the run's value, `stage1_epochs` the epochs stage
    1 trained and `kept_epoch` the one it kept, NaN where the runs table lacks them). Groups
    in the order they first appear, runs by data seed then train seed. `by` columns missing
    from `runs` are left out of the grouping; a table without balanced accuracy (no run
    finished) has no outliers."""
    keys = [k for k in by if k in runs.columns]
    if "balanced_accuracy" not in runs.columns or not keys:
        return pd.DataFrame(columns=[*keys, *COLUMNS])
    done = runs if "status" not in runs.columns else runs[runs["status"] == "done"]
    done = done[done["balanced_accuracy"].notna()].copy()
    for column in ("kept_epoch", "stage1_epochs"):
        if column not in done.columns:
            done[column] = float("nan")
    grouped = done.groupby(keys, sort=False, dropna=False)["balanced_accuracy"]
    done["method_median"] = grouped.transform("median")
    done["n_runs"] = grouped.transform("size")
    done["gap"] = done["method_median"] - done["balanced_accuracy"]
    flagged = done[(done["n_runs"] >= 2) & (done["gap"] > gap + TOLERANCE)].copy()
    group_rank = {key: i for i, key in enumerate(dict.fromkeys(_group_keys(done, keys)))}
    flagged["_group"] = [group_rank[key] for key in _group_keys(flagged, keys)]
    flagged = flagged.sort_values(["_group", "data_seed", "train_seed"], kind="stable")
    return flagged[[*keys, *COLUMNS]].reset_index(drop=True)


def _group_keys(frame: pd.DataFrame, keys: list[str]) -> list[tuple[object, ...]]:
    """Each row's group, NaN spelt as None so that equal keys compare equal."""
    rows = frame[keys].astype(object).where(frame[keys].notna(), None)
    return [tuple(row) for row in rows.itertuples(index=False)]


def kept_epoch(outlier: pd.Series) -> str:
    """'kept epoch 7 of 18' (or 'kept epoch 7' where the number of epochs is unknown; '' where
    the kept epoch is too)."""
    if pd.isna(outlier["kept_epoch"]):
        return ""
    total = outlier["stage1_epochs"]
    return f"kept epoch {int(outlier['kept_epoch'])}" + (
        "" if pd.isna(total) else f" of {int(total)}"
    )


def describe(outlier: pd.Series, name: str) -> str:
    """One outlier in a sentence: 'supcon+crt data seed 0 train seed 1 (run r1): BAcc 57.7,
    17.7 below its method's median 75.4; stage 1 kept epoch 7 of 18' (percent, one decimal)."""
    epoch = kept_epoch(outlier)
    return (
        f"{name} data seed {int(outlier['data_seed'])} train seed "
        f"{int(outlier['train_seed'])} (run {outlier['run_id']}): BAcc "
        f"{100 * outlier['balanced_accuracy']:.1f}, {100 * outlier['gap']:.1f} below its "
        f"method's median {100 * outlier['method_median']:.1f}"
        + (f"; stage 1 {epoch}" if epoch else "")
    )
