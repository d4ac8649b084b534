"""What `bench sweep` was asked: the options of one method's sweep."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.experiment.conditions import Conditions


@dataclass(frozen=True)
class SweepOptions:
    """What `bench sweep` was asked. `method` names the method one sweep tunes; given to
    `sweep_methods`, it may name several (`a,b`, or the name of a list of methods)."""

    dataset: str
    method: str
    n_trials: int = 20
    timeout: float | None = None
    storage: str | None = None
    space: Path | None = None
    seed: int | None = None
    data_seeds: tuple[int, ...] = (0,)
    conditions: Conditions = field(default_factory=Conditions)
    heartbeat: int = 60
    results_dir: Path | None = None
    methods_dir: Path | None = None
    progress: bool = True
    worker: str | None = None  # the tag of one of several workers started by one `bench sweep`
