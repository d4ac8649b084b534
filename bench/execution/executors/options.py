"""Executor options: the command line's, over an `[executor]` table in a TOML file that a lab
writes once (`--executor-config`), over the defaults."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.core.validation import Field, check_fields, parse_duration, read_toml

EXECUTORS = ("local", "slurm")
MAX_MINUTES = 365 * 1440  # a time limit beyond a year is a typo


def parse_minutes(text: str | int | float) -> int:
    """Minutes in `90`, `90m`, `2h`, `1d` or `1:30:00` (SLURM's h:mm:ss), within SLURM's
    bounds."""
    try:
        minutes = parse_duration(text, unit="m") / 60
    except BenchError as error:
        raise BenchError(f"time {text!r}: {error}") from None
    if minutes < 1:
        raise BenchError(f"time {text!r}: SLURM's smallest time limit is 1 minute.")
    if minutes > MAX_MINUTES:
        raise BenchError(f"time {text!r}: at most 365 days ({MAX_MINUTES} minutes).")
    return round(minutes)


@dataclass(frozen=True)
class ExecutorOptions:
    """Where jobs run and with what. `jobs`: workers (local processes, or the most array
    tasks running at once on SLURM); `threads`: torch threads per worker (default: the CPUs a
    worker was given). The `slurm_*` fields are SLURM's resources per job."""

    name: str = "local"
    jobs: int = 1
    threads: int | None = None
    slurm_partition: str | None = None
    slurm_gpus: int = 0
    slurm_cpus: int = 1
    slurm_mem_gb: float | None = None
    slurm_time: int = 240
    slurm_setup: tuple[str, ...] = ()
    slurm_array_parallelism: int | None = None
    slurm_probe: bool = True

    @property
    def in_process(self) -> bool:
        """Whether the work runs in the submitting process itself (local, one worker)."""
        return self.name == "local" and self.jobs == 1

    def threads_per_worker(self) -> int | None:
        """Torch threads per worker: as asked; else, for local workers, this machine's CPUs
        shared out. None leaves the choice to where the work runs: torch's default in the
        submitting process, the job's CPUs on SLURM."""
        if self.threads or self.in_process or self.name == "slurm":
            return self.threads
        return max(1, usable_cpus() // self.jobs)


def job_threads(asked: int | None) -> int | None:
    """Torch threads in a job: as asked, else the CPUs SLURM gave the job, else None (torch's
    default)."""
    return asked or int(os.environ.get("SLURM_CPUS_PER_TASK", "0")) or None


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# Keys of the [executor] table: the fields they set and what each may hold (time: minutes,
# or text `parse_minutes` reads; setup: a shell line or a list of them).
CONFIG_KEYS = {
    "name": "name",
    "jobs": "jobs",
    "threads": "threads",
    "partition": "slurm_partition",
    "gpus": "slurm_gpus",
    "cpus": "slurm_cpus",
    "mem_gb": "slurm_mem_gb",
    "time": "slurm_time",
    "setup": "slurm_setup",
    "array_parallelism": "slurm_array_parallelism",
    "probe": "slurm_probe",
}
CONFIG_FIELDS = {
    "name": Field(str, choices=EXECUTORS),
    "jobs": Field(int, 1, 4096),
    "threads": Field(int, 1, 4096),
    "partition": Field(str),
    "gpus": Field(int, 0, 64),
    "cpus": Field(int, 1, 4096),
    "mem_gb": Field(float, 0.001, 1e6, advice="use a number of GB above 0"),
    "time": Field(object),
    "setup": Field(object),
    "array_parallelism": Field(int, 1, 1_000_000),
    "probe": Field(bool),
}


def read_config(path: Path) -> dict[str, Any]:
    """The fields set by the `[executor]` table of the TOML file at `path`, checked."""
    document = read_toml(path, "executor config")
    if not isinstance(document.get("executor"), dict):
        raise BenchError(f"{path}: no [executor] table (keys: {', '.join(CONFIG_KEYS)}).")
    table = check_fields(document["executor"], CONFIG_FIELDS, f"{path}: [executor]")
    fields = {CONFIG_KEYS[k]: v for k, v in table.items()}
    if "slurm_time" in fields:
        try:
            fields["slurm_time"] = parse_minutes(fields["slurm_time"])
        except BenchError as error:
            raise BenchError(f"{path}: [executor] {error}") from None
    if "slurm_setup" in fields:
        setup = fields["slurm_setup"]
        if isinstance(setup, str):
            setup = [setup]
        if not isinstance(setup, list) or not all(isinstance(line, str) for line in setup):
            raise BenchError(f"{path}: [executor] setup must be a list of shell lines.")
        fields["slurm_setup"] = tuple(setup)
    return fields


def resolve_options(config: Path | None, given: dict[str, Any]) -> ExecutorOptions:
    """Defaults < the config file's `[executor]` < the command line (`given`, None: not
    given); every value through the same checks."""
    fields = read_config(config) if config else {}
    given = {k: v for k, v in given.items() if v is not None and v != ()}
    keys = {field: key for key, field in CONFIG_KEYS.items()}
    for field, value in given.items():
        if keys[field] not in ("time", "setup"):  # parsed by their own flags' types
            flag = "--executor" if field == "name" else "--" + field.replace("_", "-")
            CONFIG_FIELDS[keys[field]].check(value, flag)
    if fields.get("name", "local") != "slurm" and given.get("name") != "slurm":
        in_file = [keys[f] for f in fields if f.startswith("slurm_")]
        if in_file:
            raise BenchError(
                f"{config}: [executor] {', '.join(in_file)} only apply to SLURM; "
                'set name = "slurm" there or remove them.'
            )
    fields |= given
    slurm_given = [k for k in given if k.startswith("slurm_")]
    if fields.get("name", "local") != "slurm" and slurm_given:
        flags = ", ".join("--" + k.replace("_", "-") for k in slurm_given)
        raise BenchError(f"{flags} only apply to --executor slurm.")
    return dataclasses.replace(ExecutorOptions(), **fields)
