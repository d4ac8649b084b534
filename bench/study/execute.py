"""`bench study run`: the study's missing runs, dataset by dataset, through `bench run`'s
runner and executors; with `export`, each dataset's archive is written as soon as it ends, so
a study built over several sessions loses nothing finished."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tqdm import tqdm

from bench.core.layout import default_results_dir
from bench.execution.executors import ExecutorOptions
from bench.recipes.methods import MethodRegistry
from bench.run.runner import RunOptions, run_benchmark
from bench.study.file import Study, StudyDataset
from bench.study.grid import export, progress


@dataclass(frozen=True)
class StudyOutcome:
    """The runs that failed, by dataset (empty: every asked run is done)."""

    failures: dict[str, tuple[str, ...]]


def run_study(
    study: Study,
    datasets: list[StudyDataset],
    base: RunOptions,
    execution: ExecutorOptions,
    export_each: bool = False,
    prefer: str | None = None,
) -> StudyOutcome:
    """Run what `datasets` of `study` miss, each dataset's missing cells in one pool of
    workers: a run in the results folder or in the study's archive is not run again, so a
    fresh checkout goes on where the archive ends. `base`
    brings the results folder, progress bars and the conditions (device, data root, cache),
    each dataset its settings; `prefer` resolves the conflicts of `export_each` (see
    `bench.results.archive.merge`)."""
    failures: dict[str, tuple[str, ...]] = {}
    registry = MethodRegistry()
    results_dir = base.results_dir or default_results_dir()
    for dataset in datasets:
        tqdm.write(f"study {study.name}: {dataset.name} {dataset.options()}".rstrip())
        state = progress(study, dataset, results_dir, registry)
        missing = state.missing
        if not missing:
            tqdm.write(f"{dataset.name}: every run is done (in {results_dir} or the archive)")
        else:
            options = dataclasses.replace(
                base,
                dataset=dataset.name,
                methods=",".join(dict.fromkeys(method for method, _, _ in missing)),
                seeds=tuple(sorted({train_seed for _, _, train_seed in missing})),
                data_seeds=tuple(sorted({data_seed for _, data_seed, _ in missing})),
                cells=frozenset(missing),
                stage1_seconds=state.stage1_seconds,  # the longest start first
                conditions=dataset.conditions(base.conditions),
                results_dir=results_dir,
                report=False,
            )
            outcome = run_benchmark(options, execution)
            if outcome.failures:
                failures[dataset.name] = outcome.failures
        if export_each:
            written = export(study, dataset, results_dir, registry, prefer)
            tqdm.write(f"{dataset.name}: {len(written.runs)} run(s) in {study.archive}")
    return StudyOutcome(failures)
