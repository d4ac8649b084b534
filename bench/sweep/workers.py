"""`bench sweep --jobs N` and `--executor slurm`: N Optuna workers sharing one storage.

The submitting process opens the study once (recording its settings), then starts N workers
as jobs of the chosen executor; each runs `run_sweep` until the study has its trials, as a
separate `bench sweep` would. Every trial carries its worker's tag, so when a worker's job ends
its trials still marked running are failed at once — a journal study has no heartbeats to
reveal them. A journal study's orphans from a killed earlier sweep are failed before the
workers start, unless workers of an earlier submission still run (they are followed). The
submitter follows the jobs and the study's trial count with one progress bar.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from tqdm import tqdm

from bench.core.errors import BenchError, Interrupted
from bench.core.layout import default_results_dir, methods_dir
from bench.core.signals import stopped_by
from bench.execution.executors import Executor, ExecutorOptions, make_executor, wait
from bench.execution.executors.options import job_threads
from bench.execution.jobs import FAILED, Batch, Job, JobState, Task, batches
from bench.sweep.opening import open_study
from bench.sweep.optimise import run_sweep
from bench.sweep.options import SweepOptions
from bench.sweep.trials import FINISHED, SUBMITTER, fail_orphans, fail_trials_of


@dataclass(frozen=True)
class SweepTask:
    """One worker's job: the sweep options (absolute paths, the cache folder among its
    conditions, its tag) and its torch threads."""

    options: SweepOptions
    threads: int | None


def sweep_worker(task: SweepTask) -> dict[str, int]:
    """The job function of a worker: run the sweep until the study has its trials."""
    if threads := job_threads(task.threads):
        torch.set_num_threads(threads)
    study, _ = run_sweep(task.options)
    return {"trials": len(study.get_trials(deepcopy=False))}


def _earlier_workers(executor: Executor, jobs_dir: Path, study: str) -> list[Job]:
    """Workers of an earlier submission on `study` that are still queued or running."""
    candidates = [
        job
        for batch in batches(jobs_dir)
        if batch.executor == executor.name
        for job in batch.jobs
        if job.key == study
    ]
    return executor.live(candidates)


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
    options = dataclasses.replace(
        options,
        results_dir=results_dir,
        conditions=options.conditions.for_workers(options.conditions.device),
        space=options.space.resolve() if options.space else None,
        methods_dir=(options.methods_dir or methods_dir()).resolve(),
    )
    executor = make_executor(execution, results_dir, options.conditions.cache_dir)
    opened = open_study(dataclasses.replace(options, worker=SUBMITTER))
    study, jobs_dir = opened.study, opened.folder / "jobs"
    earlier = _earlier_workers(executor, jobs_dir, study.study_name)
    if options.storage == "journal" and not earlier:  # nobody works on it: orphans are dead
        fail_orphans(study)
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    starting = max(0, execution.jobs - len(earlier)) if done < options.n_trials else 0
    tqdm.write(
        f"sweep {study.study_name}: {done} trial(s) finished, {options.n_trials} wanted; "
        + (f"following {len(earlier)} running worker(s), " if earlier else "")
        + f"starting {starting} worker(s) ({executor.name})"
    )
    if done >= options.n_trials and not earlier:
        return study, opened.folder
    tags: dict[str, str] = {}
    jobs: list[Job] = []

    def trials() -> str:
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        return f"{finished}/{options.n_trials} trials"

    def on_end(job: Job, state: JobState) -> None:
        if job.uid in tags and (failed := fail_trials_of(study, tags[job.uid])):
            tqdm.write(f"worker job {job.job_id} ended with {failed} trial(s) running: failed")
        if state.state == FAILED:
            tqdm.write(f"worker job {job.job_id} failed: {state.detail}")

    try:
        if starting:
            executor.prepare(jobs_dir, options.progress)
            batch = Batch.create(jobs_dir, executor.name)
            threads = execution.threads_per_worker()
            tasks = []
            for index in range(starting):
                tag = f"{batch.folder.name}/{index}"
                worker = dataclasses.replace(options, progress=False, worker=tag)
                task = SweepTask(worker, threads)
                tasks.append(Task(sweep_worker, task, f"worker-{index}", key=study.study_name))
            jobs = executor.submit(batch, tasks)
            tags = {job.uid: f"{batch.folder.name}/{job.index}" for job in jobs}
            tqdm.write(f"submitted {len(jobs)} worker job(s); ledger and logs in {batch.folder}")
        wait(executor, earlier + jobs, options.progress, on_end, poll=5.0, watch=trials)
    except KeyboardInterrupt:
        said = executor.interrupt()
        raise Interrupted(
            f"{stopped_by()}; {said}. The study keeps what they finish; rerun this command to "
            "follow them and continue it."
        ) from None
    except BaseException:
        executor.interrupt()  # local workers end with their command, whatever ended it
        raise
    return study, opened.folder
