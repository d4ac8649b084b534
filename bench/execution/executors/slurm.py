"""`--executor slurm`: jobs as one SLURM job array, submitted through submitit.

States are read from `squeue` while jobs are queued or running and from each job's own result
file once it ends (`bench.execution.jobs`); a job that ended without one is looked up with
`scontrol` (which remembers ended jobs for the cluster's `MinJobAge`) and, where accounting is
set up, `sacct` — so no accounting database is needed. Before the first real jobs on a results
folder, a probe job checks that the compute nodes see it (and the cache) as this machine does.
"""

from __future__ import annotations

import logging
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import submitit

from bench.core.errors import BenchError
from bench.core.files import write_text_atomic
from bench.execution.executors.options import ExecutorOptions
from bench.execution.jobs import (
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    Batch,
    Job,
    JobState,
    Task,
    ended_state,
    perform,
)

QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
GRACE_S = 15.0  # a result file may take this long to show on a shared file system
PATIENCE_S = 600.0  # how long `squeue` may fail in a row before following the jobs gives up
PROBE_OK = ".probe-ok"


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """A SLURM command's output; a command that hangs (a busy controller) counts as failed."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, 124, "", f"{command[0]} timed out")


def partitions() -> list[str]:
    """The cluster's partitions, as `sinfo` lists them."""
    listed = _run(["sinfo", "-h", "-o", "%R"])
    if listed.returncode != 0:
        raise BenchError(f"sinfo failed: {listed.stderr.strip() or listed.stdout.strip()}")
    return sorted({line.strip() for line in listed.stdout.splitlines() if line.strip()})


def probe_visibility(argument: tuple[str, str, str]) -> str:
    """The probe job: check that this node reads the token the submitter wrote and can write
    beside it and into the cache; returns the node's name (raises what it cannot do)."""
    import platform

    token_path, token, cache = Path(argument[0]), argument[1], Path(argument[2])
    if token_path.read_text() != token:
        raise BenchError(f"{token_path} holds another token here: not the submitter's folder")
    for folder in (token_path.parent, cache):
        folder.mkdir(parents=True, exist_ok=True)
        check = folder / f".probe-{platform.node()}.tmp"
        check.write_text("ok")
        check.unlink()
    return platform.node()


class SlurmExecutor:
    """A SLURM cluster reached from this (login) machine."""

    name = "slurm"

    def __init__(self, options: ExecutorOptions, results_dir: Path, cache_dir: Path) -> None:
        missing = [c for c in ("sbatch", "squeue", "sinfo", "scontrol") if not shutil.which(c)]
        if missing:
            raise BenchError(
                f"--executor slurm needs SLURM's commands, and {', '.join(missing)} is not on "
                "PATH here: run bench on a login node of the cluster, or use --jobs N for "
                "worker processes on this machine."
            )
        known = partitions()
        if options.slurm_partition and options.slurm_partition not in known:
            raise BenchError(
                f"SLURM has no partition {options.slurm_partition!r}; this cluster has "
                f"{', '.join(known) or 'none'} (set it with --slurm-partition)."
            )
        logging.getLogger("submitit").setLevel(logging.ERROR)
        self.options = options
        self.results_dir = results_dir
        self.cache_dir = cache_dir.resolve()
        self.watcher = SlurmWatcher(options.slurm_time)

    def _submitit(self, folder: Path, name: str, **overrides: Any) -> submitit.SlurmExecutor:
        options = self.options
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=0)
        parameters: dict[str, Any] = {
            "job_name": name,
            "time": options.slurm_time,
            "cpus_per_task": options.slurm_cpus,
            "setup": list(options.slurm_setup),
            "stderr_to_stdout": True,
        }
        if options.slurm_partition:
            parameters["partition"] = options.slurm_partition
        if options.slurm_gpus:
            parameters["gpus_per_node"] = options.slurm_gpus
        if options.slurm_mem_gb:
            parameters["mem"] = f"{int(options.slurm_mem_gb * 1024)}M"
        parallelism = options.slurm_array_parallelism or (
            options.jobs if options.jobs > 1 else None
        )
        if parallelism:
            parameters["array_parallelism"] = parallelism
        executor.update_parameters(**(parameters | overrides))
        return executor

    def _sbatch(self, executor: submitit.SlurmExecutor, paths: list[Path]) -> list[Any]:
        try:
            return executor.map_array(perform_in_slurm, [str(path) for path in paths])
        except Exception as error:  # sbatch's own message, on one line
            text = getattr(error, "stderr", None) or getattr(error, "output", None) or str(error)
            if isinstance(text, bytes):
                text = text.decode(errors="replace")
            line = next((ln for ln in str(text).splitlines() if "error" in ln.lower()), str(text))
            raise BenchError(f"sbatch refused the jobs: {line.strip()[:300]}") from error

    def prepare(self, jobs_dir: Path, progress: bool) -> None:
        """Run the probe job once per results folder: the compute nodes must see the folder
        (tasks, results, logs) and the cache as this machine does."""
        cache = self.cache_dir
        marker = jobs_dir / PROBE_OK
        if not self.options.slurm_probe or (marker.exists() and marker.read_text() == f"{cache}\n"):
            return
        batch = Batch.create(jobs_dir / "probes", "slurm-probe")
        token_path = batch.folder / "probe-token"
        token = batch.folder.name
        write_text_atomic(token_path, token)
        task = Task(probe_visibility, (str(token_path), token, str(cache)), "probe")
        [path] = batch.write_tasks([task])
        executor = self._submitit(
            batch.folder / "slurm", "bench-probe", time=5, cpus_per_task=1, gpus_per_node=None
        )
        [submitted] = self._sbatch(executor, [path])
        job = Job(0, "probe", submitted.job_id, Path(submitted.paths.stdout), batch.result_file(0))
        batch.jobs = [job]
        batch.save()
        try:
            self._await_probe(job, progress)
        except KeyboardInterrupt:
            _run(["scancel", job.job_id])
            raise
        write_text_atomic(marker, f"{cache}\n")  # this folder and this cache are seen

    def _await_probe(self, job: Job, progress: bool) -> None:
        told = False
        while True:
            state = self.states([job])[job.uid]
            if state.state == DONE:
                return
            if state.state == FAILED:
                raise BenchError(
                    f"the probe job {job.job_id} failed: {state.detail}. The compute nodes must "
                    f"see {self.results_dir} and {self.cache_dir} at the same paths as this "
                    "machine (a shared file system; choose them with --results-dir and "
                    "--cache-dir)."
                )
            if progress and not told:
                print(
                    f"waiting for probe job {job.job_id}: it checks that the compute nodes see "
                    "the results folder and the cache (once per results folder; "
                    "--no-slurm-probe skips it)",
                    flush=True,
                )
                told = True
            time.sleep(2.0)

    def submit(self, batch: Batch, tasks: list[Task]) -> list[Job]:
        """Submit the tasks as one job array (in order: most expensive first)."""
        paths = batch.write_tasks(tasks)
        batch.jobs = [
            Job(i, task.name, "", batch.folder / "slurm", batch.result_file(i), task.runs, task.key)
            for i, task in enumerate(tasks)
        ]
        batch.save()  # recorded before sbatch: a submission cut short is visible in `bench status`
        executor = self._submitit(batch.folder / "slurm", f"bench-{batch.folder.name}")
        submitted = self._sbatch(executor, paths)
        batch.jobs = [
            Job(i, task.name, job.job_id, Path(job.paths.stdout), batch.result_file(i),
                task.runs, task.key)
            for i, (task, job) in enumerate(zip(tasks, submitted, strict=True))
        ]  # fmt: skip
        batch.save()
        return batch.jobs

    def states(self, jobs: list[Job]) -> dict[str, JobState]:
        """The state of each job (see `SlurmWatcher`)."""
        return self.watcher.states(jobs)

    def live(self, jobs: list[Job]) -> list[Job]:
        """The jobs of an earlier submission that are still queued or running."""
        return self.watcher.queued_or_running(jobs)

    def interrupt(self) -> str:
        """Leave the jobs running: they are the cluster's now."""
        return "the jobs keep running on the cluster"


class SlurmWatcher:
    """Reads job states: result files first, then `squeue`, then `scontrol` / `sacct` for a
    job that ended without a result (after `grace` seconds: a result file may take a moment
    to show on a shared file system). `time_limit`: the jobs' limit in minutes, for messages;
    `patience`: seconds of failing `squeue` calls after which following the jobs stops."""

    def __init__(
        self, time_limit: int | None, grace: float = GRACE_S, patience: float = PATIENCE_S
    ) -> None:
        self.time_limit = time_limit
        self.grace = grace
        self.patience = patience
        self.failing_since: float | None = None
        self.missing_since: dict[str, float] = {}
        self.last: dict[str, JobState] = {}

    def states(self, jobs: list[Job]) -> dict[str, JobState]:
        """The state of each job, by `Job.uid`."""
        states: dict[str, JobState] = {}
        open_jobs = []
        for job in jobs:
            ended = ended_state(job)
            if ended is not None:
                states[job.uid] = ended
            elif not job.job_id:
                states[job.uid] = JobState(FAILED, "never submitted: its submission was cut short")
            else:
                open_jobs.append(job)
        queued = _squeue(open_jobs)
        now = time.monotonic()
        if queued is None:  # squeue failed (a busy controller): nothing learnt, ask again later
            if self.failing_since is None:
                self.failing_since = now
            if now - self.failing_since > self.patience:
                raise BenchError(
                    f"squeue has failed for {self.patience:.0f} s, so the jobs' "
                    "states are unknown; they keep running on the cluster. Follow them with "
                    "`bench status`, or rerun this command when the controller answers."
                )
            return states | {
                job.uid: self.last.get(job.uid, JobState(PENDING)) for job in open_jobs
            }
        self.failing_since = None
        for job in open_jobs:
            if job.job_id in queued:
                self.missing_since.pop(job.uid, None)
                states[job.uid] = JobState(PENDING if queued[job.job_id] in QUEUED else RUNNING)
                continue
            first = self.missing_since.setdefault(job.uid, now)
            record = _ended_record(job.job_id)
            if now - first < self.grace and (record is None or record[0] == "COMPLETED"):
                states[job.uid] = JobState(RUNNING)  # just ended: its result may yet show
                continue
            states[job.uid] = JobState(FAILED, self._why(job, record))
        self.last.update(states)
        return states

    def queued_or_running(self, jobs: list[Job]) -> list[Job]:
        """The jobs `squeue` lists (queued or running) and that have not written a result;
        when `squeue` fails, an error rather than a guess (taking live jobs for gone would
        submit their work again, and fail a sweep's running trials)."""
        listed = _squeue(jobs)
        if listed is None:
            raise BenchError(
                "squeue failed, so it is unknown whether the jobs of an earlier submission "
                "still run; rerun this command when the SLURM controller answers."
            )
        return [job for job in jobs if job.job_id in listed and ended_state(job) is None]

    def _why(self, job: Job, record: tuple[str, str] | None) -> str:
        """Why a job ended without a result, in words a user can act on."""
        state, exit_code = record or ("", "")
        minutes = self.time_limit or "?"
        reasons = {
            "TIMEOUT": f"killed at its time limit ({minutes} min); raise --slurm-time (or "
            "`time` in the executor config): a rerun resumes from what was saved",
            "OUT_OF_MEMORY": "killed for exceeding its memory; raise --slurm-mem-gb",
            "CANCELLED": "cancelled (scancel, or an administrator)",
            "NODE_FAIL": "its node failed; rerun to submit it again",
            "BOOT_FAIL": "its node failed to boot; rerun to submit it again",
            "PREEMPTED": "preempted by another job; rerun to submit it again",
            "DEADLINE": "reached its deadline before it ran",
        }
        if (state == "FAILED" and exit_code.split(":")[0] == "140") or exit_code.endswith(":12"):
            # Ended by USR2 (exit 128 + 12): SLURM sends it only as the time-limit warning
            # submitit asks for, and with a short limit it can come before the job ignores it.
            why = reasons["TIMEOUT"]
        elif state in reasons:
            why = reasons[state]
        elif state:
            why = f"ended {state} (exit code {exit_code}) without writing its result"
        else:
            why = (
                "ended without writing a result visible here (if its log is missing too, the "
                "compute nodes may not share this results folder)"
            )
        return f"{why} (log: {job.log})"


def perform_in_slurm(task_file: str) -> Any:
    """The job function: `bench.execution.jobs.perform`, with submitit's time-out signal (USR2, sent
    before the time limit to checkpoint and requeue) ignored: a unit is not checkpointable,
    and resuming is the rerun's job. SLURM then ends the job at its limit, as TIMEOUT."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    return perform(task_file)


def _squeue(jobs: list[Job]) -> dict[str, str] | None:
    """The state of each listed job still known to `squeue`, by job id (`123_4`); None when
    `squeue` fails."""
    arrays = sorted({job.job_id.split("_")[0] for job in jobs if job.job_id})
    if not arrays:
        return {}
    listed = _run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(arrays)])
    if listed.returncode != 0:
        if "Invalid job id" in listed.stderr:  # every one has left the queue
            return {}
        return None
    states = {}
    for line in listed.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        states[job_id] = state
    return states


def _ended_record(job_id: str) -> tuple[str, str] | None:
    """(state, exit code) of an ended job from `scontrol`, else `sacct`; None if unknown."""
    shown = _run(["scontrol", "show", "job", "-o", job_id])
    if shown.returncode == 0 and (state := re.search(r"\bJobState=(\S+)", shown.stdout)):
        if state.group(1) not in QUEUED | {"RUNNING", "COMPLETING", "SUSPENDED"}:
            exit_code = re.search(r"\bExitCode=(\S+)", shown.stdout)
            return state.group(1), exit_code.group(1) if exit_code else ""
        return None
    if shutil.which("sacct"):
        listed = _run(["sacct", "-n", "-P", "-X", "-o", "State,ExitCode", "-j", job_id])
        if listed.returncode == 0 and listed.stdout.strip():
            state_text, _, exit_text = listed.stdout.splitlines()[0].partition("|")
            return state_text.split()[0], exit_text
    return None
