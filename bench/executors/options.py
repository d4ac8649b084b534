"""Executor options: the command line's, over an `[executor]` table in a TOML file that a lab
writes once (`--executor-config`), over the defaults."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.files import read_toml

EXECUTORS = ("local", "slurm")


def parse_minutes(text: str | int | float) -> int:
    """Minutes in `90`, `90m`, `2h`, `1d` or `1:30:00` (SLURM's h:mm:ss)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        minutes = float(text)
    else:
        text = str(text).strip()
        if match := re.fullmatch(r"(\d+(?:\.\d+)?)\s*([mhd]?)", text):
            minutes = float(match.group(1)) * {"": 1, "m": 1, "h": 60, "d": 1440}[match.group(2)]
        elif match := re.fullmatch(r"(\d+):(\d\d):(\d\d)", text):
            hours, mins, secs = (int(g) for g in match.groups())
            minutes = 60 * hours + mins + secs / 60
        else:
            raise BenchError(f"time {text!r}: use minutes, or 30m, 4h, 1d, or h:mm:ss.")
    if minutes < 1:
        raise BenchError(f"time {text!r}: SLURM's smallest time limit is 1 minute.")
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


# Keys of the [executor] table and the fields they set (minutes accepted as text for time).
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


def read_config(path: Path) -> dict[str, Any]:
    """The fields set by the `[executor]` table of the TOML file at `path`, checked."""
    document = read_toml(path)
    table = document.get("executor")
    if not isinstance(table, dict):
        raise BenchError(f"{path}: no [executor] table (keys: {', '.join(CONFIG_KEYS)}).")
    unknown = sorted(set(table) - set(CONFIG_KEYS))
    if unknown:
        raise BenchError(
            f"{path}: unknown key(s) {', '.join(unknown)} in [executor]; known: "
            f"{', '.join(CONFIG_KEYS)}."
        )
    fields = {CONFIG_KEYS[k]: v for k, v in table.items()}
    if "slurm_time" in fields:
        fields["slurm_time"] = parse_minutes(fields["slurm_time"])
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
    given); values checked."""
    fields = read_config(config) if config else {}
    fields |= {k: v for k, v in given.items() if v is not None and v != ()}
    where = f" (in {config})" if config else ""
    if fields.get("name", "local") not in EXECUTORS:
        raise BenchError(
            f"unknown executor {fields['name']!r}{where}; choose one of {', '.join(EXECUTORS)}."
        )
    for name in ("jobs", "threads", "slurm_cpus", "slurm_array_parallelism"):
        value = fields.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise BenchError(f"executor {name} must be a positive integer, got {value!r}{where}.")
    gpus = fields.get("slurm_gpus", 0)
    if not isinstance(gpus, int) or gpus < 0:
        raise BenchError(f"executor gpus must be 0 or more, got {gpus!r}{where}.")
    mem = fields.get("slurm_mem_gb")
    if mem is not None and (not isinstance(mem, int | float) or mem <= 0):
        raise BenchError(f"executor mem_gb must be positive, got {mem!r}{where}.")
    slurm_given = [k for k in given if k.startswith("slurm_") and given[k] not in (None, ())]
    if fields.get("name", "local") != "slurm" and slurm_given:
        flags = ", ".join("--" + k.replace("_", "-") for k in slurm_given)
        raise BenchError(f"{flags} only apply to --executor slurm.")
    return dataclasses.replace(ExecutorOptions(), **fields)
