"""What a comparison over datasets compares: per dataset, a test metric (balanced accuracy by
default) of each method on each block — a (data seed, train seed) run pair that every compared
method has — at the methods' current settings."""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.data.formats import FORMATS
from bench.data.specs import all_specs, get_spec
from bench.experiment.conditions import Conditions
from bench.recipes.methods import MethodRegistry
from bench.report.collect import SETTINGS_ADVICE
from bench.results.archive import DatasetArchive, from_results
from bench.results.store import ResultsStore


@dataclass(frozen=True)
class DatasetScores:
    """One dataset's test score in `metric` (a key of `SCALARS`; × 100, in points), a row per
    block (split, train seed) and a column per method. A split is named by its digest, not its
    data seed: a source that fixes its own split (MedMNIST's files) gives every data seed the
    same one. `test_sets`: the distinct test sets under its splits. `pooled`: whether it
    enters the verdict pooled over datasets (a generated dataset is reported apart).
    For resampling test images (None: not kept): `predicted`, each block's predicted test
    labels by (split, train seed, method); `test_of`, each split's test-set digest; `labels`,
    each test set's true labels by digest."""

    name: str
    blocks: pd.DataFrame
    test_sets: int
    metric: str = "balanced_accuracy"
    pooled: bool = True
    predicted: dict[tuple[str, int, str], np.ndarray] | None = None
    test_of: dict[str, str] | None = None
    labels: dict[str, np.ndarray] | None = None

    @property
    def splits(self) -> int:
        """The distinct splits its numbers rest on."""
        return self.blocks.index.get_level_values("split").nunique()

    @property
    def shared_test_set(self) -> bool:
        """Whether its splits share test sets (a source's fixed one)."""
        return self.test_sets < self.splits

    def described(self) -> str:
        """How many splits, and test sets when splits share one (a source's fixed test set)."""
        text = f"{self.splits} split(s)"
        if self.shared_test_set:
            text += f" sharing {self.test_sets} test set(s)"
        return text


def generated(name: str) -> bool:
    """Whether a dataset is generated rather than collected (reported apart by default)."""
    return all(FORMATS.meta(f).generated for f in get_spec(name).formats)


def _done_runs(
    results_dir: Path, name: str, registry: MethodRegistry, conditions: Conditions
) -> pd.DataFrame:
    """The finished runs of dataset `name` at their methods' current settings."""
    runs = ResultsStore(results_dir, name).current_runs(get_spec(name), registry, conditions)
    return runs[runs["status"] == "done"] if not runs.empty else runs


def datasets_with_runs(results_dir: Path) -> list[str]:
    """The named dataset specs with a results folder holding runs."""
    return [name for name in all_specs() if ResultsStore(results_dir, name).runs_dir.is_dir()]


def finished_runs(
    results_dir: Path,
    datasets: list[str],
    registry: MethodRegistry,
    conditions: Conditions | None = None,
    skip_stale: bool = False,
) -> dict[str, pd.DataFrame]:
    """Each dataset's finished runs at the current settings under `conditions` (their
    overrides and profile). With `skip_stale`, a dataset without runs at those settings is
    left out (and said); otherwise it is an error."""
    conditions = conditions or Conditions()
    runs = {name: _done_runs(results_dir, name, registry, conditions) for name in datasets}
    if skip_stale:
        for name in [n for n, table in runs.items() if table.empty]:
            print(f"note: {name} left out: no finished runs at the current settings")
            del runs[name]
        if not runs:
            raise BenchError(f"no dataset in {results_dir} has runs at the current settings.")
    for name, table in runs.items():
        if table.empty:
            recorded = ResultsStore(results_dir, name).runs_table()
            other = int((recorded["status"] == "done").sum()) if not recorded.empty else 0
            advice = (
                f"its {other} finished run(s) were made at other settings; {SETTINGS_ADVICE}"
                if other
                else f"run some first (bench run --dataset {name})"
            )
            raise BenchError(
                f"{name}: no finished runs at the current settings in {results_dir / name}; "
                f"{advice}."
            )
    return runs


def results_archives(results_dir: Path, runs: dict[str, pd.DataFrame]) -> dict[str, DatasetArchive]:
    """Each dataset's `finished_runs` as an archive of runs (what `scores_of` reads)."""
    return {
        name: from_results(ResultsStore(results_dir, name), table["run_id"])
        for name, table in runs.items()
    }


def scores_of(
    archives: dict[str, DatasetArchive],
    methods: list[str] | None,
    metric: str = "balanced_accuracy",
    pooled: dict[str, bool] | None = None,
) -> list[DatasetScores]:
    """Each dataset's scores from its archive of runs: `methods` (default: those run on every
    dataset) on the blocks all of them have; `pooled` by dataset (default: every dataset that
    is not generated)."""
    present = {name: set(archive.runs["method"]) for name, archive in archives.items()}
    if methods is None:
        common = set.intersection(*present.values())
        methods = sorted(
            common,
            key=lambda m: min(list(a.runs["method"]).index(m) for a in archives.values()),
        )
    for name, names in present.items():
        if missing := [m for m in methods if m not in names]:
            raise BenchError(
                f"{name}: no finished runs of {', '.join(missing)} at the current settings; "
                f"run them (bench run --dataset {name} --methods {shlex.quote(','.join(missing))}"
                ", or `bench study run` for a study) or leave them out of the methods compared."
            )
    if len(methods) < 2:
        raise BenchError(f"{len(methods)} method(s) were run on every dataset; compare needs 2.")
    pooled = pooled or {}
    return [
        _dataset_scores(
            name, archive, methods, metric, pooled[name] if name in pooled else not generated(name)
        )
        for name, archive in archives.items()
    ]


def _dataset_scores(
    name: str, archive: DatasetArchive, methods: list[str], metric: str, pooled: bool
) -> DatasetScores:
    table = archive.runs[archive.runs["method"].isin(methods)].copy()
    _check_recorded(name, table, metric)
    table["score"] = 100 * table[metric].astype(float)
    table["split"] = table["split_hash"].where(
        table["split_hash"].fillna("").astype(bool), table["data_seed"].astype(str)
    )  # records without a digest: their data seed
    blocks = table.pivot_table(
        index=["split", "train_seed"], columns="method", values="score", aggfunc="mean"
    ).reindex(columns=methods)
    blocks = blocks.dropna()
    if blocks.empty:
        raise BenchError(
            f"{name}: no (data seed, train seed) has runs of every compared method; run "
            "them at the same seeds."
        )
    table = table[table.set_index(["split", "train_seed"]).index.isin(blocks.index)]
    keys = zip(table["split"], table["train_seed"], table["method"], table["run_id"], strict=True)
    predicted = {
        (str(split), int(seed), str(method)): archive.predicted[str(run_id)]
        for split, seed, method, run_id in keys
    }
    test_of = dict(zip(table["split"], table["test_digest"].astype(str), strict=True))
    labels = {digest: archive.labels[digest] for digest in set(test_of.values())}
    return DatasetScores(name, blocks, len(labels), metric, pooled, predicted, test_of, labels)


def _check_recorded(name: str, runs: pd.DataFrame, metric: str) -> None:
    """Refuse, naming the methods and how many of their runs, when some of `runs` have no
    test `metric`: recorded before it existed, undefined on their test split, or (kappa) a
    task that is not ordinal."""
    lacking = runs[runs[metric].isna()] if metric in runs else runs
    if lacking.empty:
        return
    if metric == "qwk" and not get_spec(name).ordinal:
        raise BenchError(
            f"{name}: qwk is recorded only for ordinal tasks and its spec declares none "
            "([metrics] ordinal = true); compare on another --metric or leave it out."
        )
    total = Counter(runs["method"])
    counts = ", ".join(f"{m} {n} of {total[m]}" for m, n in Counter(lacking["method"]).items())
    raise BenchError(
        f"{name}: no test {metric} in {len(lacking)} run(s) ({counts}): recorded before the "
        "metric existed (or undefined on their test split); remove those run folders and run "
        "them again (stage 1 comes from the cache while it is there), or compare on another "
        "--metric."
    )
