"""Which runs a study asks for, which of them are done (in `results/` or in its archive), and
what the rest will cost, from the stage-1 times its done runs measured."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.core.errors import BenchError
from bench.experiment.conditions import Conditions
from bench.experiment.experiment import current_settings_ids
from bench.recipes.methods import MethodRegistry
from bench.recipes.variants import base_name
from bench.results.archive import (
    DatasetArchive,
    Merged,
    from_results,
    merge,
    read_archive,
    write_archive,
)
from bench.results.store import ResultsStore
from bench.study.file import Study, StudyDataset

Cell = tuple[str, int, int]  # (method, data seed, train seed)


def cells(study: Study, dataset: StudyDataset, registry: MethodRegistry) -> list[Cell]:
    """Every (method, data seed, train seed) the study asks of `dataset`, in order."""
    return [
        (method.name, data_seed, train_seed)
        for method in study.methods_on(dataset, registry)
        for data_seed in study.data_seeds
        for train_seed in study.train_seeds
    ]


def settings_ids(study: Study, dataset: StudyDataset, registry: MethodRegistry) -> dict[str, str]:
    """The settings id each of the study's methods has on `dataset` at its settings."""
    conditions = dataset.conditions(Conditions())
    names = [m.name for m in study.methods_on(dataset, registry)]
    return current_settings_ids(
        dataset.spec(), registry, names, conditions.overrides, conditions.profile
    )


def _in_grid(runs: pd.DataFrame, study: Study, ids: dict[str, str]) -> pd.Series:
    """Which rows of `runs` are cells of the study at their method's current settings."""
    if runs.empty:
        return pd.Series([], dtype=bool)
    return (
        runs["method"].map(ids).eq(runs["settings_id"])
        & runs["data_seed"].isin(study.data_seeds)
        & runs["train_seed"].isin(study.train_seeds)
    )


def study_runs(
    study: Study,
    dataset: StudyDataset,
    results_dir: Path,
    registry: MethodRegistry,
    prefer: str | None = None,
) -> DatasetArchive:
    """The study's runs of `dataset`: its archive's, with the finished runs of `results_dir`
    merged in (a run in both with other numbers: see `bench.results.archive.merge`), each cell
    once."""
    ids = settings_ids(study, dataset, registry)
    return _in_study(_merged(study, dataset, results_dir, ids, prefer), study, dataset, ids)


def _in_study(
    archive: DatasetArchive, study: Study, dataset: StudyDataset, ids: dict[str, str]
) -> DatasetArchive:
    """The rows of `archive` that are cells of the study, refused when two share a cell."""
    archive = archive.select(archive.runs.loc[_in_grid(archive.runs, study, ids), "run_id"])
    repeated = archive.runs.duplicated(["method", "data_seed", "train_seed"], keep=False)
    if repeated.any():
        first = archive.runs[repeated].iloc[0]
        raise BenchError(
            f"{dataset.name}: {int(repeated.sum())} runs share cells, first {first['method']} at "
            f"data seed {first['data_seed']}, train seed {first['train_seed']} (another split "
            "of that data seed, when the data or its spec changed, or another device type, cpu "
            "or cuda, which enters the run id); keep one run per cell (`bench study merge "
            "--prefer` keeps one when archives merge)."
        )
    return archive


def _merged(
    study: Study,
    dataset: StudyDataset,
    results_dir: Path,
    ids: dict[str, str],
    prefer: str | None,
) -> DatasetArchive:
    """The whole archive of `dataset` (rows of other settings or seeds included: an archive
    never loses a run) with the study's finished runs of `results_dir` merged in."""
    archive = read_archive(study.archive, dataset.name)
    store = ResultsStore(results_dir, dataset.name)
    table = store.runs_table()
    if not table.empty:
        table = table[table["status"] == "done"]
        found = from_results(store, table.loc[_in_grid(table, study, ids), "run_id"])
        archive = merge(archive, found, prefer).archive
    return archive


@dataclass(frozen=True)
class Progress:
    """One dataset's state in a study: its cells, the done ones' runs, the missing cells, the
    stage-1 trainings they need, their estimated seconds (None: nothing measured yet), and
    the median measured seconds of each stage 1 (by recipe name) they come from."""

    dataset: StudyDataset
    cells: int
    done: pd.DataFrame
    missing: list[Cell]
    stage1_missing: int
    estimate_s: float | None
    stage1_seconds: dict[str, float]


def progress(
    study: Study, dataset: StudyDataset, results_dir: Path, registry: MethodRegistry
) -> Progress:
    """What of `dataset` is done and what remains, with the remaining stage-1 trainings'
    estimated cost: each at the median stage-1 time of done runs with the same stage 1 on this
    dataset (a variant's: its recipe's), else of every done run here (stage 1s of done cells
    counted as cached)."""
    runs = study_runs(study, dataset, results_dir, registry, prefer="kept").runs
    grid = cells(study, dataset, registry)
    done = {
        (str(method), int(data_seed), int(train_seed))
        for method, data_seed, train_seed in zip(
            runs["method"], runs["data_seed"], runs["train_seed"], strict=True
        )
    }
    missing = [cell for cell in grid if cell not in done]
    stage1_of = {m.name: m.stage1.name for m in study.methods_on(dataset, registry)}
    trained = {(stage1_of[m], d, t) for m, d, t in done}
    needed = {(stage1_of[m], d, t) for m, d, t in missing} - trained
    times: dict[str, list[float]] = {}
    for method, seconds in zip(runs["method"], runs.get("stage1_seconds", []), strict=False):
        if isinstance(seconds, float | int) and seconds == seconds:  # not NaN
            times.setdefault(stage1_of[str(method)], []).append(float(seconds))
    every = [t for values in times.values() for t in values]
    medians = {stage1: statistics.median(values) for stage1, values in times.items()}
    estimate: float | None = None
    if every:
        overall = statistics.median(every)
        # A variant's stage 1 not measured yet: as long as its recipe's.
        estimate = sum(
            medians.get(stage1, medians.get(base_name(stage1), overall)) for stage1, _, _ in needed
        )
    elif not needed:
        estimate = 0.0
    return Progress(dataset, len(grid), runs, missing, len(needed), estimate, medians)


def export(
    study: Study,
    dataset: StudyDataset,
    results_dir: Path,
    registry: MethodRegistry,
    prefer: str | None = None,
) -> DatasetArchive:
    """Merge the study's finished runs of `results_dir` into the archive of `dataset` and write
    it (rows outside the study's grid, of other settings or seeds, are kept); returns the
    study's runs in it."""
    ids = settings_ids(study, dataset, registry)
    whole = _merged(study, dataset, results_dir, ids, prefer)
    if not whole.runs.empty:
        write_archive(study.archive, dataset.name, whole)
    return _in_study(whole, study, dataset, ids)


def merge_folder(
    study: Study, dataset: StudyDataset, folder: Path, prefer: str | None = None
) -> Merged:
    """Merge the archive of `dataset` in another folder (another machine's or lab's export of
    the same study) into the study's, and write it."""
    incoming = read_archive(folder, dataset.name)
    merged = merge(read_archive(study.archive, dataset.name), incoming, prefer)
    if merged.added or merged.resolved:
        write_archive(study.archive, dataset.name, merged.archive)
    return merged
