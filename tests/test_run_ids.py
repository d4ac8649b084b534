"""Run ids are the results folder's keys: a change that leaves what a run computes alone (a
module moved, a parser rewritten) must leave them alone, or every results folder is orphaned.
The ids below are those of the README's main job, as its runs were recorded."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from bench.data.specs import get_spec
from bench.experiment.conditions import Conditions
from bench.recipes.methods import MethodRegistry
from bench.results.store import ResultsStore
from bench.run.plan import RunOptions, plan

PINNED = {
    "ce-d0-s1-7ed988e258",
    "ce+crt-d0-s0-c919a344d4",
    "ce+lws-d0-s1-3b1bb5b5b4",
    "rs-cb-d0-s2-7be61a5721",
    "supcon+crt-d0-s1-4ad3adb676",
    "centre-triplet+crt-d0-s2-03f378c80f",
}


@pytest.mark.slow
def test_the_main_jobs_run_ids_are_unchanged(tmp_path: Path) -> None:
    options = RunOptions("synthetic", seeds=(0, 1, 2), results_dir=tmp_path, progress=False)
    methods = MethodRegistry().expand("ce,ce+crt,ce+lws,rs-cb,supcon+crt,centre-triplet+crt")
    planned = plan(options, get_spec("synthetic"), methods, torch.device("cpu"))
    ids = {run.run_id for run in planned}
    assert len(ids) == 18 and ids >= PINNED
    other = dataclasses.replace(options, conditions=Conditions(overrides={"checkpoint": "best"}))
    changed = {
        run.run_id for run in plan(other, get_spec("synthetic"), methods[:1], torch.device("cpu"))
    }
    assert not changed & ids  # the ids do depend on what a run computes


def test_current_settings_are_decided_in_one_place_and_skip_unknown_methods(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path, "synthetic")
    spec, registry = get_spec("synthetic"), MethodRegistry()
    ids = store.current_ids(spec, registry, Conditions(), ["ce", "ce+crt", "tuned/gone"])
    assert set(ids) == {"ce", "ce+crt"} and ids["ce"] == ids["ce+crt"]  # one stage 1, one id
    other = store.current_ids(spec, registry, Conditions(overrides={"epochs": 3}), ["ce"])
    assert other["ce"] != ids["ce"]
