"""`bench status`: the runs recorded for a dataset and the jobs submitted for it.

Job states come from the ledger (`bench.execution.jobs`): a job's result file when it has ended; for
SLURM jobs, the cluster's queue (`SlurmWatcher`) when its commands are here; for local
workers, whether the worker's process still lives (on this host), and for a job not yet
started, whether its submitting command still lives (its session claim, `bench.core.claims`).
"""

from __future__ import annotations

import os
import platform
import shutil
from collections import Counter
from pathlib import Path

from bench.core.claims import is_live
from bench.execution.jobs import (
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    Batch,
    Job,
    JobState,
    batches,
    ended_state,
)
from bench.results.store import ResultsStore

UNKNOWN = "unknown"


def _local_state(batch: Batch, job: Job) -> JobState:
    """A local worker's job: ended (its result), running (its process lives), else failed."""
    ended = ended_state(job)
    if ended is not None:
        return ended
    if batch.host != platform.node():
        return JobState(UNKNOWN, f"a worker of {batch.host}: run `bench status` there")
    if job.job_id.startswith("pid "):
        try:
            os.kill(int(job.job_id.removeprefix("pid ")), 0)
            return JobState(RUNNING)
        except ProcessLookupError:
            pass
        except PermissionError:
            return JobState(RUNNING)
    if job.job_id == "queued":
        if batch.submitter and is_live(Path(batch.submitter)):
            return JobState(PENDING)  # its command lives and starts it when a worker frees
        return JobState(FAILED, "never started: its command ended first (rerun it)")
    return JobState(FAILED, f"ended without a result: its command was stopped (log: {job.log})")


def batch_states(batch: Batch) -> dict[str, JobState]:
    """The state of each job of `batch`, by `Job.uid`."""
    if batch.executor == "slurm":
        if shutil.which("squeue"):
            from bench.execution.executors.slurm import SlurmWatcher

            return SlurmWatcher(None, grace=0.0).states(batch.jobs)
        return {
            job.uid: ended_state(job) or JobState(UNKNOWN, "no squeue here to ask")
            for job in batch.jobs
        }
    return {job.uid: _local_state(batch, job) for job in batch.jobs}


def describe(store: ResultsStore) -> tuple[str, bool]:
    """What `bench status` prints for one results folder, and whether any job is still
    queued or running."""
    lines = []
    runs = store.runs_table()
    if runs.empty:
        lines.append(f"{store.root.name}: no runs recorded in {store.root}")
    else:
        counts = Counter(runs["status"])
        lines.append(
            f"{store.root.name}: {len(runs)} run(s) recorded in {store.root}: "
            f"{counts.get('done', 0)} done, {counts.get('failed', 0)} failed"
        )
        for _, run in runs[runs["status"] == "failed"].head(10).iterrows():
            lines.append(f"  failed run {run['run_id']}: {str(run['error']).splitlines()[0]}")
    active = False
    ledgers = [*batches(store.root / "jobs"), *batches(store.root / "sweeps" / "jobs")]
    for batch in ledgers:
        if not batch.jobs:
            continue
        states = batch_states(batch)
        tally = Counter(state.state for state in states.values())
        order = (DONE, RUNNING, PENDING, FAILED, UNKNOWN)
        kind = "sweep workers" if batch.folder.parent.parent.name == "sweeps" else "runs"
        lines.append(
            f"batch {batch.folder.name} ({kind}, {batch.executor}, {len(batch.jobs)} job(s)): "
            + ", ".join(f"{tally[s]} {s}" for s in order if tally[s])
        )
        for job in batch.jobs:
            state = states[job.uid]
            if state.state in (RUNNING, PENDING):
                active = True
                lines.append(f"  {state.state} job {job.job_id} ({job.name}), log: {job.log}")
            elif state.state in (FAILED, UNKNOWN):
                lines.append(f"  {state.state} job {job.job_id} ({job.name}): {state.detail}")
    if not active:
        lines.append("no job is queued or running.")
    return "\n".join(lines), active
