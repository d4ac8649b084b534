"""`bench sweep`'s work: each method's study run (here or by workers), its best trial
printed, its plots drawn, and on request its best trial exported as a tuned recipe."""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from bench.core.errors import BenchError
from bench.data.specs import get_spec
from bench.execution.executors import ExecutorOptions
from bench.recipes.methods import TUNED, Method, MethodRegistry
from bench.recipes.variants import base_name
from bench.sweep.export import export_best
from bench.sweep.optimise import run_sweep
from bench.sweep.options import SweepOptions
from bench.sweep.plots import save_plots
from bench.sweep.workers import run_sweep_workers


def sweep_methods(options: SweepOptions, execution: ExecutorOptions, export: bool = False) -> int:
    """Tune each method `options.method` names (`a,b`, or a list's name), one study each at
    the same budget, in this process or by `execution.jobs` workers; print each study's best
    trial, draw its plots, and with `export` write it as a tuned recipe. Returns 1 when a
    study has failed trials and no completed one, else 0."""
    registry = MethodRegistry(options.methods_dir)
    methods = registry.expand(options.method)
    if varied := [m.name for m in methods if base_name(m.name) != m.name]:
        raise BenchError(
            f"{varied[0]}: a sweep tunes a recipe, not a variant of one; sweep "
            f"{base_name(varied[0])} and give the fields it searches in --space FILE "
            "(docs/sweeps.md)."
        )
    code = 0
    if execution.in_process and execution.threads:
        torch.set_num_threads(execution.threads)
    sweep = run_sweep if execution.in_process else partial(run_sweep_workers, execution=execution)
    for method in methods:
        study, folder = sweep(dataclasses.replace(options, method=method.name))
        if not any(t.state == TrialState.COMPLETE for t in study.trials):
            if export:
                raise BenchError(f"{study.study_name}: no completed trial to export yet.")
            print(f"{study.study_name}: no completed trial yet.")
            failed = any(t.state == TrialState.FAIL for t in study.trials)
            code = 1 if failed else code
            continue
        _show_best(study, method, folder)
        if export:
            path = export_best(study, method, get_spec(options.dataset).name, registry.folder)
            print(
                f"exported: {path}; evaluate it with "
                f"`bench run --methods {TUNED}{path.stem} --dataset {options.dataset}`"
            )
    return code


def _show_best(study: optuna.Study, method: Method, folder: Path) -> None:
    """Print the best trial of a study with completed trials, and draw its plots."""
    best = study.best_trial
    print(
        f"{study.study_name}: best validation BAcc {best.value:.4f} "
        f"(trial {best.number}) {best.params}"
    )
    plots, skipped = save_plots(study, folder / f"{method.slug}-plots")
    print(
        f"plots: {', '.join(str(p) for p in plots)}"
        + "".join(f"\n  not drawn: {s}" for s in skipped)
    )
