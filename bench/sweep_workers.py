"""`bench sweep --jobs N` and `--executor slurm`: N Optuna workers sharing one storage.

The submitting process opens the study once (recording its settings, failing a journal
study's orphaned trials), then starts N workers as jobs of the chosen executor; each worker
runs `run_sweep` until the study has its trials, as a separate `bench sweep` would, with the
storage's heartbeats failing the trial of a worker that dies. The submitter follows the jobs
and the study's trial count with one progress bar.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from tqdm import tqdm

from bench.errors import BenchError, Interrupted
from bench.executors import ExecutorOptions, make_executor, wait
from bench.jobs import FAILED, Batch, Job, JobState, Task
from bench.layout import default_results_dir
from bench.sweep import FINISHED, SweepOptions, open_study, run_sweep


@dataclass(frozen=True)
class SweepTask:
    """One worker's job: the sweep options (absolute paths) and its torch threads."""

    options: SweepOptions
    threads: int | None


def sweep_worker(task: SweepTask) -> dict[str, int]:
    """The job function of a worker: run the sweep until the study has its trials."""
    threads = task.threads or int(os.environ.get("SLURM_CPUS_PER_TASK", "0")) or None
    if threads:
        torch.set_num_threads(threads)
    study, _ = run_sweep(task.options)
    return {"trials": len(study.get_trials(deepcopy=False))}


def run_sweep_workers(
    options: SweepOptions, execution: ExecutorOptions
) -> tuple[optuna.Study, Path]:
    """Tune with `execution.jobs` workers; returns the study and the folder of its files."""
    if options.storage in (None, "sqlite"):
        raise BenchError(
            f"{execution.jobs} sweep workers need one storage they all reach: --storage journal "
            "(a file in the results folder, which must be on a shared file system for SLURM) "
            "or a database URL such as postgresql://user@host/db; SQLite takes one writer."
        )
    results_dir = (options.results_dir or default_results_dir()).resolve()
    executor = make_executor(execution, results_dir)
    opened = open_study(dataclasses.replace(options, results_dir=results_dir))
    study = opened.study
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    tqdm.write(
        f"sweep {study.study_name}: {done} trial(s) finished, {options.n_trials} wanted; "
        f"starting {execution.jobs} worker(s) on {executor.name}"
    )
    if done >= options.n_trials:
        return study, opened.folder
    jobs_dir = opened.folder / "jobs"
    executor.prepare(jobs_dir, options.progress)
    worker = dataclasses.replace(
        options,
        results_dir=results_dir,
        data_root=options.data_root.resolve() if options.data_root else None,
        progress=False,
        worker=True,
    )
    threads = execution.threads_per_worker()
    tasks = [
        Task(sweep_worker, SweepTask(worker, threads), f"worker-{i}") for i in range(execution.jobs)
    ]
    batch = Batch.create(jobs_dir, executor.name)
    jobs = executor.submit(batch, tasks)
    tqdm.write(f"submitted {len(jobs)} worker job(s); ledger and logs in {batch.folder}")

    def trials() -> str:
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        return f"{finished}/{options.n_trials} trials"

    def on_end(job: Job, state: JobState) -> None:
        if state.state == FAILED:
            tqdm.write(f"worker job {job.job_id} failed: {state.detail}")

    try:
        wait(executor, jobs, options.progress, on_end, poll=5.0, watch=trials)
    except KeyboardInterrupt:
        said = executor.interrupt(jobs)
        raise Interrupted(
            f"interrupted; {said}. The study keeps what they finish; rerun this command to "
            "continue it."
        ) from None
    return study, opened.folder
