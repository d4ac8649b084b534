"""`bench run`: plan the runs asked for, execute what is missing (here, in local worker
processes or as cluster jobs), then write the tables and the report once, from here."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from bench.core.claims import join
from bench.core.device import resolve_device
from bench.core.errors import BenchError, Interrupted
from bench.core.files import ensure_writable
from bench.core.layout import default_results_dir
from bench.core.signals import stopped_by
from bench.data.specs import DatasetSpec, get_spec
from bench.execution.executors import Executor, ExecutorOptions, make_executor, wait
from bench.execution.jobs import FAILED, Batch, Job, JobState, Task, batches, read_result
from bench.experiment.conditions import Conditions
from bench.recipes.methods import MethodRegistry
from bench.report.build import build_report
from bench.report.collect import Results, load_results
from bench.report.summary import write_empty_summary, write_summary
from bench.results.store import RUN_FILE, ResultsStore, status
from bench.run.plan import PlannedRun, RunOptions, WorkUnit, by_stage1, group_units, plan
from bench.run.work import RecordContext, RunResult, UnitTask, execute_runs, perform_unit

__all__ = ["RunOptions", "RunOutcome", "finalize", "run_benchmark"]


@dataclass(frozen=True)
class RunOutcome:
    """The finished runs asked for (None when none finished), and the runs that failed in
    this invocation (id and reason), out of how many were asked."""

    results: Results | None
    failures: tuple[str, ...]
    asked: int


def device_for(options: RunOptions, execution: ExecutorOptions) -> torch.device:
    """The device type every run is planned for, resolved once by the submitting process: on
    a cluster, what the jobs ask for (a login node without a GPU may submit to GPU nodes);
    here, what this machine has."""
    device = options.conditions.device
    if execution.name == "slurm":
        if device == "auto":
            return torch.device("cuda" if execution.slurm_gpus else "cpu")
        if device == "cuda" and not execution.slurm_gpus:
            raise BenchError("--device cuda on SLURM needs GPUs for the jobs: add --slurm-gpus 1.")
        return torch.device(device)
    return resolve_device(device)


def run_benchmark(options: RunOptions, execution: ExecutorOptions | None = None) -> RunOutcome:
    """Run every missing (method, data seed, train seed) with the executor of `execution`;
    returns the summary of those asked and the failures."""
    execution = execution or ExecutorOptions()
    spec = options.conditions.resolve_spec(get_spec(options.dataset))
    registry = MethodRegistry(options.methods_dir)
    methods = registry.expand(options.methods)
    results_dir = (options.results_dir or default_results_dir()).resolve()
    options = dataclasses.replace(options, results_dir=results_dir)  # paths workers can use
    store = ResultsStore(results_dir, spec.name)
    ensure_writable(store.root, "the results folder", "choose another with --results-dir")
    cache_dir = options.conditions.cache_dir
    ensure_writable(cache_dir, "the cache", "choose another with --cache-dir")
    executor = None if execution.in_process else make_executor(execution, results_dir, cache_dir)
    join(store.root)  # this process's session there; debris of dead sessions removed
    join(cache_dir)
    if execution.in_process and execution.threads:
        torch.set_num_threads(execution.threads)

    load_start = time.perf_counter()
    planned = plan(options, spec, methods, device_for(options, execution))
    load_seconds = time.perf_counter() - load_start
    todo = [run for run in planned if not store.is_done(run.run_id)]
    where = "this process" if executor is None else f"{execution.jobs} local worker(s)"
    if executor is not None and executor.name == "slurm":
        where = "SLURM jobs"
    tqdm.write(
        f"{spec.name}: {len(planned[0].experiment.imageset.labels)} images, "
        f"{len(methods)} method(s), {len(planned)} run(s): {len(planned) - len(todo)} already "
        f"done, {len(todo)} to run on {planned[0].experiment.device.type} by {where} "
        f"(data loaded in {load_seconds:.1f} s)."
    )
    started = time.perf_counter()
    if executor is None:
        results = _run_here(todo, store, options, execution)
        trained = [r for r in results if r.stage1_trained]
        tqdm.write(
            f"{sum(r.done for r in results)} run(s) done, {sum(not r.done for r in results)} "
            f"failed, in {time.perf_counter() - started:.0f} s, of which {len(trained)} "
            f"stage-1 training(s); results in {store.root}"
        )
        job_errors: dict[str, str] = {}
    else:
        job_errors = _run_as_jobs(executor, todo, store, options, execution, results_dir)
        tqdm.write(f"jobs ended in {time.perf_counter() - started:.0f} s; results in {store.root}")
    failures = _failures(todo, store, job_errors)
    names = [m.name for m in methods]
    current = finalize(store, spec, registry, names, options.conditions, options.report)
    asked = current.only([run.run_id for run in planned]) if current else None
    return RunOutcome(asked if asked and asked.labels else None, tuple(failures), len(planned))


def _run_here(
    todo: list[PlannedRun], store: ResultsStore, options: RunOptions, execution: ExecutorOptions
) -> list[RunResult]:
    """The runs in this process, a stage 1 and its runs after another."""
    context = RecordContext(options.conditions, {"name": "local", "workers": 1, "job": None})
    bar = tqdm(total=len(todo), desc="runs", unit="run", disable=not options.progress or not todo)
    results = []
    for runs in by_stage1(todo).values():
        bar.set_postfix_str(runs[0].method.stage1.name)
        results += execute_runs(runs, store, context, on_done=lambda _: bar.update(1))
    bar.close()
    return results


def _run_as_jobs(
    executor: Executor,
    todo: list[PlannedRun],
    store: ResultsStore,
    options: RunOptions,
    execution: ExecutorOptions,
    results_dir: Path,
) -> dict[str, str]:
    """Submit one job per unit (jobs of an earlier submission still queued or running for a
    unit are followed instead), wait with one progress bar, and return the errors of failed
    jobs by run id. Ctrl-C leaves cluster jobs running and says how to follow them."""
    if not todo:
        return {}
    units = group_units(todo, options, results_dir)
    jobs_dir = store.root / "jobs"
    executor.prepare(jobs_dir, options.progress)
    followed = _live_jobs(executor, jobs_dir, units)
    if followed:
        tqdm.write(
            f"following {len(followed)} job(s) of an earlier submission that already cover "
            "some of these runs"
        )
    covered = {job.key for job in followed}
    where_run = {"name": executor.name, "workers": execution.jobs}
    tasks = [
        Task(
            perform_unit,
            UnitTask(unit, where_run, execution.threads_per_worker()),
            unit.name,
            unit.run_ids,
            unit.stage1_key,
        )
        for unit in units
        if unit.stage1_key not in covered
    ]
    errors: dict[str, str] = {}

    def on_end(job: Job, state: JobState) -> None:
        if state.state == FAILED:
            tqdm.write(f"job {job.job_id} ({job.name}) failed: {state.detail}")
            errors.update({run_id: state.detail for run_id in job.runs})
            return
        result = read_result(job) or {}
        runs = (result.get("value") or {}).get("runs", [])
        for run in runs:
            tqdm.write(
                run["message"] if run["done"] else f"run {run['run_id']} failed: {run['message']}"
            )

    try:
        jobs: list[Job] = []
        if tasks:
            batch = Batch.create(jobs_dir, executor.name)
            jobs = executor.submit(batch, tasks)
            tqdm.write(
                f"submitted {len(jobs)} job(s) (a stage 1 and its runs each; ledger and logs "
                f"in {batch.folder})"
            )
        wait(executor, followed + jobs, options.progress, on_end)
    except KeyboardInterrupt:
        said = executor.interrupt()
        raise Interrupted(
            f"{stopped_by()}; {said}. Follow them with `bench status --dataset {store.root.name}`"
            " (--finalize writes the tables when they have ended), or rerun this command: "
            "it submits only what is missing and waits for the rest."
        ) from None
    except BaseException:
        executor.interrupt()  # local workers end with their command, whatever ended it
        raise
    return errors


def _live_jobs(executor: Executor, jobs_dir: Path, units: list[WorkUnit]) -> list[Job]:
    """Jobs of earlier submissions (by this executor) still queued or running that cover
    every run of one of `units`: followed rather than submitted again."""
    wanted = {unit.stage1_key: set(unit.run_ids) for unit in units}
    candidates = [
        job
        for batch in batches(jobs_dir)
        if batch.executor == executor.name
        for job in batch.jobs
        if job.key in wanted and wanted[job.key] <= set(job.runs)
    ]
    live: dict[str, Job] = {}
    for job in executor.live(candidates):
        live.setdefault(job.key, job)
    return list(live.values())


def _failures(todo: list[PlannedRun], store: ResultsStore, job_errors: dict[str, str]) -> list[str]:
    """Each asked run that is not done, with why: its recorded error, else its job's."""
    failures = []
    for run in todo:
        if store.is_done(run.run_id):
            continue
        path = store.run_dir(run.run_id) / RUN_FILE
        reason = job_errors.get(run.run_id, "not run")
        if path.exists():
            reason = (status(json.loads(path.read_text()))[1].splitlines() or [reason])[0]
        failures.append(f"{run.run_id} ({reason})")
    return failures


def finalize(
    store: ResultsStore,
    spec: DatasetSpec,
    registry: MethodRegistry,
    methods: list[str],
    conditions: Conditions,
    report: bool = True,
) -> Results | None:
    """Write `runs.csv`, the summary of every run at the current settings and (when `report`)
    the report of `methods`, from the run folders: once, by the submitting process (or `bench
    status --finalize`). Returns the runs summarised (None when none finished)."""
    runs = store.write_runs_csv()
    title = f"{spec.name}: recorded runs at the current settings"
    current, ids = None, {}
    if not runs.empty and (runs["status"] == "done").any():
        ids = store.current_ids(spec, registry, conditions, runs["method"].unique())
        order = list(dict.fromkeys([*methods, *registry.lists.get("all", []), *sorted(ids)]))
        with contextlib.suppress(BenchError):  # no finished run at the current settings
            current = load_results(store.root.parent, spec.name, order, ids)
    if current is None:
        write_empty_summary(store.root, title)
        return None
    write_summary(current, title)
    if report:
        try:
            chosen = load_results(store.root.parent, spec.name, methods, ids)
            built = build_report(chosen, cache_dir=conditions.cache_dir)
            tqdm.write(f"report of these methods: {built.folder / 'index.html'}")
        except Exception as error:  # the runs are saved; only the report is missing
            tqdm.write(
                f"report not written ({type(error).__name__}: {error}); the runs are saved, "
                f"`bench report --dataset {spec.name}` retries."
            )
    return current
