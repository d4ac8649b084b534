"""`--jobs N` on one machine: N worker processes, each running one job at a time.

Each job is a fresh `python -m bench.execution.jobs TASK` process (one unit: a stage 1 and its
runs), so a worker that dies takes only its own job with it; the others go on. On a CPU the
machine's cores are shared out as torch threads; on a machine with GPUs each worker slot is
pinned to its own GPU through `CUDA_VISIBLE_DEVICES` (slot i on GPU i mod the GPU count).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.core.signals import SUBMITTER
from bench.execution.executors.options import ExecutorOptions
from bench.execution.jobs import FAILED, PENDING, RUNNING, Batch, Job, JobState, Task, ended_state


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    slot: int


class ProcessExecutor:
    """Worker processes on this machine, at most `options.jobs` at once."""

    name = "local"

    def __init__(self, options: ExecutorOptions) -> None:
        self.options = options
        self.gpus = visible_gpus()
        self.queue: list[Job] = []
        self.running: dict[str, _Running] = {}
        self.exits: dict[str, int] = {}
        self.batch: Batch | None = None

    def submit(self, batch: Batch, tasks: list[Task]) -> list[Job]:
        """Queue every task (they start as worker slots free up, in order)."""
        paths = batch.write_tasks(tasks)
        jobs = [
            Job(i, task.name, "queued", batch.folder / "logs" / f"task-{i}.log",
                batch.result_file(i), task.runs, task.key)
            for i, (task, _) in enumerate(zip(tasks, paths, strict=True))
        ]  # fmt: skip
        batch.jobs, self.batch, self.queue = jobs, batch, list(jobs)
        batch.save()
        self._start_queued()
        return jobs

    def _environment(self, slot: int) -> dict[str, str]:
        env = dict(os.environ)
        env[SUBMITTER] = str(os.getpid())  # the worker ends when this process does
        threads = self.options.threads_per_worker()
        if threads:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        return env

    def _start_queued(self) -> None:
        assert self.batch is not None
        free = [
            s for s in range(self.options.jobs) if s not in {r.slot for r in self.running.values()}
        ]
        while self.queue and free:
            job, slot = self.queue.pop(0), free.pop(0)
            with open(job.log, "ab") as log:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.execution.jobs",
                        str(self.batch.task_file(job.index)),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._environment(slot),
                )
            job.job_id = f"pid {process.pid}"
            self.running[job.uid] = _Running(process, slot)
            self.batch.save()

    def states(self, jobs: list[Job]) -> dict[str, JobState]:
        """Poll the workers, start queued jobs in freed slots, and say where each job is."""
        for uid, running in list(self.running.items()):
            code = running.process.poll()
            if code is not None:
                self.exits[uid] = code
                del self.running[uid]
        self._start_queued()
        states = {}
        for job in jobs:
            ended = ended_state(job)
            if ended is not None:
                states[job.uid] = ended
            elif job.uid in self.running:
                states[job.uid] = JobState(RUNNING)
            elif job.uid in self.exits:
                states[job.uid] = JobState(FAILED, f"{_exit(self.exits[job.uid])} (log: {job.log})")
            else:
                states[job.uid] = JobState(PENDING)
        return states

    def prepare(self, jobs_dir: Path, progress: bool) -> None:
        """Nothing to check: the workers share this machine's folders."""

    def live(self, jobs: list[Job]) -> list[Job]:
        """Workers end with the command that started them: none of an earlier one lives on."""
        return []

    def interrupt(self) -> str:
        """Stop the workers (they are this command's children)."""
        for running in self.running.values():
            running.process.send_signal(signal.SIGTERM)
        for running in self.running.values():
            try:
                running.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                running.process.kill()
        return "the worker processes were stopped; finished runs are kept, rerun to resume."


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as `CUDA_VISIBLE_DEVICES` names them (a mask the user
    set is kept: with `2,3`, workers go to GPUs 2 and 3)."""
    if not torch.cuda.is_available():
        return []
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask:
        return [name.strip() for name in mask.split(",") if name.strip()]
    return [str(index) for index in range(torch.cuda.device_count())]


def _exit(code: int) -> str:
    """How a worker process ended without writing its result."""
    if code < 0:
        name = signal.Signals(-code).name
        cause = " (by the user, or the kernel when memory ran out)" if name == "SIGKILL" else ""
        return f"the worker process was killed by {name}{cause}"
    return f"the worker process exited with code {code} before writing its result"
