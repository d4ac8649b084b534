"""Executing a unit of work, wherever it runs: rebuild its runs, check their ids, run what is
missing, record each run.

The same code runs a unit in the submitting process, in a local worker process and in a
cluster job. A worker loads the image set from the shared cache and rebuilds the split, then
re-derives every run id of the unit: an id that differs from the submitter's means the worker
sees other data or other code, and the unit fails before training anything. Each run is
claimed before it is evaluated, so two overlapping commands never write one run twice.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sklearn
import torch
from tqdm import tqdm

import bench
from bench.components.settings import DEFAULT_PROFILE
from bench.core.claims import join, wait_for_claim
from bench.core.errors import BenchError, TrainingDiverged
from bench.core.layout import project_root
from bench.data.loading import load_imageset
from bench.execution.executors.options import job_threads
from bench.experiment.conditions import Conditions
from bench.experiment.experiment import Experiment, evaluate
from bench.results.store import ResultsStore
from bench.run.plan import PlannedRun, WorkUnit, plan_run
from bench.stage1.artefacts import ArtefactCache


@dataclass(frozen=True)
class RunResult:
    """What became of one run here: done or failed (with a one-line message), and the
    seconds spent training (stage 1 when trained here, and stage 2)."""

    run_id: str
    done: bool
    message: str
    training_s: float
    stage1_trained: bool = False


@functools.cache
def git_commit() -> str | None:
    """The checkout's commit (looked up once per process), or None outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(project_root()), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return commit or None


def environment() -> dict[str, Any]:
    """Where a run ran: commit, library versions, host and torch threads (recorded)."""
    return {
        "git_commit": git_commit(),
        "versions": {
            "bench": bench.__version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": importlib.metadata.version("torchvision"),
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
        },
        "host": platform.node(),
        "torch_threads": torch.get_num_threads(),
    }


def device_name(device: torch.device) -> str:
    """The device's name as recorded: the GPU's model, or the CPU's (from /proc/cpuinfo
    where there is one, else the architecture)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({cpu_model() or platform.processor() or platform.machine()})"


def cpu_model() -> str:
    """The CPU's model name on Linux ('' elsewhere or when unreadable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


@dataclass(frozen=True)
class RecordContext:
    """What every record of an invocation adds: its conditions (the overrides given, the
    profile, compile, whether unreadable images were skipped) and where the runs executed."""

    conditions: Conditions
    executor: dict[str, Any]


def execute_runs(
    runs: list[PlannedRun],
    store: ResultsStore,
    context: RecordContext,
    on_done: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Evaluate each run not yet done and record it; a failed run is recorded as failed and
    the others go on. `on_done` hears of each run executed here."""
    results, environs = [], environment()
    store.runs_dir.mkdir(parents=True, exist_ok=True)
    for run in runs:
        run_id = run.run_id

        def done_elsewhere(run_id: str = run_id) -> bool | None:
            return True if store.is_done(run_id) else None

        def say(holder: str, run_id: str = run_id) -> None:
            tqdm.write(f"run {run_id} is being run by {holder}")

        claim, _ = wait_for_claim(store.runs_dir / f"{run_id}.claim", done_elsewhere, say)
        if claim is None:  # done meanwhile, by another process
            continue
        with claim:
            results.append(_execute(run, store, context, environs))
        if on_done is not None:
            on_done(results[-1])
    return results


def _execute(
    run: PlannedRun, store: ResultsStore, context: RecordContext, environs: dict[str, Any]
) -> RunResult:
    record = {
        "run_id": run.run_id,
        "variant": run.variant,
        "settings_id": run.settings_id,
        "config": run.config,
        "overrides": context.conditions.given(),
        "profile": context.conditions.profile or DEFAULT_PROFILE,
        "compile": context.conditions.compile,
        "split_manifest": str(run.manifest),
        "data": {**run.experiment.imageset.provenance, "skip_bad": context.conditions.skip_bad},
        "device_name": device_name(run.experiment.device),
        **environs,
        "executor": context.executor,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        evaluation = evaluate(run.method, run.experiment, run.train_seed)
    except Exception as error:  # a failed run is recorded and the others go on
        reason = f"{type(error).__name__}: {error}"
        trace = "" if isinstance(error, TrainingDiverged) else traceback.format_exc(limit=5)
        store.save_failed(record, f"{reason}\n{trace}".strip())
        tqdm.write(f"run {run.run_id} failed: {reason}")
        return RunResult(run.run_id, False, reason, 0.0)
    record |= evaluation.record | {"finished_at": datetime.now(UTC).isoformat(timespec="seconds")}
    store.save_done(record, evaluation.metrics, evaluation.predictions)
    stage1 = evaluation.record["stage1"]
    how = (
        f"stage 1 reused from cache {stage1['key']}"
        if stage1["reused"]
        else f"stage 1 trained in {stage1['train_s']:.0f} s"
    )
    test = evaluation.metrics["test"]
    message = (
        f"{run.run_id}: test BAcc {test['balanced_accuracy']:.3f}, "
        f"Acc {test['accuracy']:.3f} ({how})"
    )
    tqdm.write(message)
    training = evaluation.record["timings"]["train_s"]
    return RunResult(run.run_id, True, message, training, not stage1["reused"])


def rebuild_runs(unit: WorkUnit, progress: bool = False) -> list[PlannedRun]:
    """The unit's runs, re-planned from its resolved settings on this machine's copy of the
    data; raises when an id differs from the submitter's (other data or code here)."""
    conditions = unit.conditions
    imageset = load_imageset(
        unit.spec,
        unit.settings.image_size,
        cache_dir=conditions.cache_dir,
        data_root=conditions.data_root,
        progress=progress,
        skip_bad=conditions.skip_bad,
    )
    spec = unit.spec
    split = spec.split(imageset, unit.data_seed)
    experiment = Experiment(
        spec=spec,
        imageset=imageset,
        split=split,
        settings=unit.settings,
        device=torch.device(conditions.device),
        cache=ArtefactCache(conditions.cache_dir),
        progress=progress,
        compile=conditions.compile,
    )
    runs = [plan_run(experiment, method, unit.train_seed, unit.manifest) for method in unit.methods]
    for run, expected in zip(runs, unit.run_ids, strict=True):
        if run.run_id != expected:
            raise BenchError(
                f"run id {run.run_id} here, {expected} where the work was planned: this "
                f"machine ({platform.node()}) sees other data or another version of the code; "
                "give the workers the same code and data as the submitting machine."
            )
    return runs


@dataclass(frozen=True)
class UnitReport:
    """A unit's outcome: its runs' results and where the time went (seconds: the whole unit
    and the part spent training)."""

    unit: str
    runs: tuple[RunResult, ...]
    wall_s: float
    training_s: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the result file of a job)."""
        return {
            "unit": self.unit,
            "runs": [r.__dict__ for r in self.runs],
            "wall_s": round(self.wall_s, 3),
            "training_s": round(self.training_s, 3),
        }


def execute_unit(
    unit: WorkUnit,
    executor: dict[str, Any],
    threads: int | None = None,
    progress: bool = False,
) -> UnitReport:
    """Run a unit's missing runs on this machine (with `threads` torch threads, when given);
    `executor` says where, in each record."""
    started = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    store = ResultsStore(unit.results_dir, unit.spec.name)
    join(store.root)
    join(unit.conditions.cache_dir)
    runs = [r for r in rebuild_runs(unit, progress) if not store.is_done(r.run_id)]
    context = RecordContext(unit.conditions, executor)
    results = execute_runs(runs, store, context)
    return UnitReport(
        unit.name,
        tuple(results),
        time.perf_counter() - started,
        sum(r.training_s for r in results),
    )


@dataclass(frozen=True)
class UnitTask:
    """A unit as a job's task: the unit, where it runs (recorded) and its torch threads."""

    unit: WorkUnit
    executor: dict[str, Any]
    threads: int | None


def perform_unit(task: UnitTask) -> dict[str, Any]:
    """The job function of a unit: execute it and return its report (JSON-ready)."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if job:
        job = f"{job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
    executor = {**task.executor, "job": job or os.environ.get("SLURM_JOB_ID") or os.getpid()}
    return execute_unit(task.unit, executor, job_threads(task.threads)).as_dict()
