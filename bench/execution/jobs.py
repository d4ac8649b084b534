"""Jobs and their ledger: what was submitted where, and what became of it.

A batch is one submission: `results/<dataset>/jobs/<batch>/` holds each task as a pickle
(`task-<i>.pkl`: a function and its argument), each job's result once it ends
(`task-<i>.result.json`, written by the job itself), the job logs, and `batch.json`: the
executor, the command, and per job its id, log and the runs it covers. `bench status` reads
the ledgers back, so a submitting process that was interrupted loses nothing.

The task pickles are written by the user's own `bench` process into the user's results
folder, and read by the user's own jobs: they carry no more trust than the code itself.
"""

from __future__ import annotations

import json
import pickle
import platform
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.core.claims import session_claim
from bench.core.files import write_atomic, write_json_atomic
from bench.core.signals import end_with_submitter, exit_code, stopped_by

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
ENDED = (DONE, FAILED)


@dataclass(frozen=True)
class Task:
    """One job's work: `function(argument)`, named for progress lines; `runs` are the run ids
    it covers (empty for a sweep worker) and `key` what it produces (a stage-1 key)."""

    function: Callable[[Any], Any]
    argument: Any
    name: str
    runs: tuple[str, ...] = ()
    key: str = ""


@dataclass
class Job:
    """A submitted task: its index in the batch, the executor's id for it, its log and the
    result file it writes when it ends."""

    index: int
    name: str
    job_id: str
    log: Path
    result: Path
    runs: tuple[str, ...] = ()
    key: str = ""

    @property
    def uid(self) -> str:
        """Unique across batches (indices are not): its result file's path."""
        return str(self.result)


@dataclass(frozen=True)
class JobState:
    """A job's state (pending, running, done, failed) and, when failed, why."""

    state: str
    detail: str = ""


@dataclass
class Batch:
    """One submission's ledger folder."""

    folder: Path
    executor: str
    jobs: list[Job] = field(default_factory=list)
    host: str = field(default_factory=platform.node)
    submitter: str = ""  # the submitting process's session claim: live while it runs

    @classmethod
    def create(cls, jobs_dir: Path, executor: str) -> Batch:
        """A new, empty batch folder under `jobs_dir`, naming this process's session claim
        in the results folder above it (how `bench status` knows the submitter lives)."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        folder = jobs_dir / f"{stamp}-{uuid.uuid4().hex[:6]}"
        (folder / "logs").mkdir(parents=True)
        claim = session_claim(jobs_dir)
        return cls(folder, executor, submitter=str(claim) if claim else "")

    def task_file(self, index: int) -> Path:
        """Where task `index` is pickled."""
        return self.folder / f"task-{index}.pkl"

    def result_file(self, index: int) -> Path:
        """Where task `index`'s job writes its result."""
        return self.folder / f"task-{index}.result.json"

    def write_tasks(self, tasks: list[Task]) -> list[Path]:
        """Pickle each task; returns their files."""
        paths = []
        for index, task in enumerate(tasks):
            path = self.task_file(index)
            write_atomic(path, pickle.dumps((task.function, task.argument)))
            paths.append(path)
        return paths

    def save(self) -> None:
        """Write `batch.json` (after every change to the jobs)."""
        write_json_atomic(
            self.folder / "batch.json",
            {
                "executor": self.executor,
                "host": self.host,
                "submitter": self.submitter,
                "command": sys.argv,
                "saved": datetime.now(UTC).isoformat(timespec="seconds"),
                "jobs": [
                    {**asdict(job), "log": str(job.log), "result": str(job.result)}
                    for job in self.jobs
                ],
            },
        )

    @classmethod
    def load(cls, folder: Path) -> Batch:
        """A batch read back from its folder."""
        record = json.loads((folder / "batch.json").read_text())
        jobs = [
            Job(
                j["index"],
                j["name"],
                str(j["job_id"]),
                Path(j["log"]),
                Path(j["result"]),
                tuple(j.get("runs", ())),
                j.get("key", ""),
            )
            for j in record["jobs"]
        ]
        return cls(
            folder, record["executor"], jobs, record.get("host", ""), record.get("submitter", "")
        )


def batches(jobs_dir: Path) -> list[Batch]:
    """Every batch recorded under `jobs_dir`, oldest first."""
    if not jobs_dir.is_dir():
        return []
    return [Batch.load(f.parent) for f in sorted(jobs_dir.glob("*/batch.json"))]


def read_result(job: Job) -> dict[str, Any] | None:
    """The result a job wrote when it ended, or None while it has not."""
    try:
        return json.loads(job.result.read_text())
    except FileNotFoundError:
        return None
    except ValueError:  # a half-visible file on a slow shared file system: read it next time
        return None


def ended_state(job: Job) -> JobState | None:
    """The state of a job from its result file: done, failed (with its error), or None."""
    result = read_result(job)
    if result is None:
        return None
    if result.get("ok"):
        return JobState(DONE)
    return JobState(FAILED, f"{result.get('error', 'error')} (log: {job.log})")


def perform(task_file: str) -> Any:
    """Run the task pickled at `task_file` and write its result beside it (`ok` and the value,
    or the error): the job function of every executor."""
    path = Path(task_file)
    result_path = path.with_name(path.name.replace(".pkl", ".result.json"))
    started = time.time()
    try:
        function, argument = pickle.loads(path.read_bytes())
        value = function(argument)
    except BaseException as error:  # recorded, then raised: the job fails visibly too
        write_json_atomic(
            result_path,
            {
                "ok": False,
                "error": f"{type(error).__name__}: {error}",
                "trace": traceback.format_exc(limit=8),
                "seconds": round(time.time() - started, 3),
            },
        )
        raise
    write_json_atomic(
        result_path, {"ok": True, "value": value, "seconds": round(time.time() - started, 3)}
    )
    return value


if __name__ == "__main__":  # a local worker process: python -m bench.execution.jobs TASK_FILE
    end_with_submitter()
    try:
        perform(sys.argv[1])
    except KeyboardInterrupt:  # its submitter ended, or stopped it
        print(f"bench worker: {stopped_by()}; finished runs are kept.", file=sys.stderr)
        sys.exit(exit_code())
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
