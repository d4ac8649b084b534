"""Executors: where jobs run. `local` runs them in the submitting process (one worker) or in
`--jobs N` worker processes on this machine; `slurm` submits them to a SLURM cluster as a
job array through submitit. All of them execute the same task functions (`bench.execution.jobs`) and
are followed through the same ledger, so results do not depend on where they ran."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from bench.execution.executors.options import ExecutorOptions
from bench.execution.jobs import DONE, ENDED, FAILED, PENDING, RUNNING, Batch, Job, JobState, Task

__all__ = ["Executor", "ExecutorOptions", "make_executor", "wait"]


class Executor(Protocol):
    """Submits a batch's tasks as jobs and tells their states."""

    name: str

    def submit(self, batch: Batch, tasks: list[Task]) -> list[Job]:
        """Start (or queue) every task; returns its jobs, recorded in the batch."""
        ...

    def prepare(self, jobs_dir: Path, progress: bool) -> None:
        """Check, before the first jobs, what can be checked (a cluster's view of the folders)."""
        ...

    def states(self, jobs: list[Job]) -> dict[str, JobState]:
        """The state of each job, by `Job.uid` (also starts queued local jobs)."""
        ...

    def live(self, jobs: list[Job]) -> list[Job]:
        """Which jobs of an earlier submission are still queued or running."""
        ...

    def interrupt(self) -> str:
        """Called when the command stops waiting early (Ctrl-C, or an error): stop what must
        stop (local workers; a cluster's jobs keep running); returns what to tell the user."""
        ...


def make_executor(options: ExecutorOptions, results_dir: Path, cache_dir: Path) -> Executor:
    """The executor `options` name, checked (a cluster's commands and partition); a cluster's
    nodes must see `results_dir` and `cache_dir` as this machine does."""
    if options.name == "slurm":
        from bench.execution.executors.slurm import (
            SlurmExecutor,  # imports submitit: only when asked
        )

        return SlurmExecutor(options, results_dir, cache_dir)
    from bench.execution.executors.processes import ProcessExecutor

    return ProcessExecutor(options)


def wait(
    executor: Executor,
    jobs: list[Job],
    progress: bool,
    on_end: Callable[[Job, JobState], None],
    poll: float = 2.0,
    watch: Callable[[], str] | None = None,
) -> dict[str, JobState]:
    """Follow `jobs` until all have ended, with one progress bar (done / running / pending /
    failed); `on_end` hears of each job as it ends, `watch` adds a line of its own to the
    bar (a sweep's trials). Returns the final states."""
    final: dict[str, JobState] = {}
    bar = tqdm(total=len(jobs), desc="jobs", unit="job", disable=not progress)
    try:
        while len(final) < len(jobs):
            live = [job for job in jobs if job.uid not in final]
            states = executor.states(live)
            for job in live:
                state = states.get(job.uid, JobState(PENDING))
                if state.state in ENDED:
                    final[job.uid] = state
                    bar.update(1)
                    on_end(job, state)
            counts = {s: 0 for s in (DONE, RUNNING, PENDING, FAILED)}
            for job in jobs:
                now = final.get(job.uid) or states.get(job.uid) or JobState(PENDING)
                counts[now.state] += 1
            bar.set_postfix_str(
                ", ".join(f"{n} {s}" for s, n in counts.items()) + (f"; {watch()}" if watch else "")
            )
            if len(final) < len(jobs):
                time.sleep(poll)
    finally:
        bar.close()
    return final
