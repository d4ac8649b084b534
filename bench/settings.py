"""Training settings: everything about stage 1 that is not the recipe (input size, backbone,
optimiser, schedule), with their built-in defaults, and how defaults, a dataset spec, a tuned
recipe and the command line are layered into the settings of one run."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.checkpoints import CHECKPOINT_RULES, DEFAULT_CHECKPOINT
from bench.errors import BenchError


@dataclass(frozen=True)
class TrainingSettings:
    """Stage-1 training settings; the one place their built-in defaults live.

    A dataset spec's `[training]` table replaces some, a tuned recipe's `[settings]` table
    others, and command-line overrides come last.
    """

    image_size: int = 32
    backbone: str = "resnet-compact"
    pretrained: bool = False
    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: int = 1
    # At least this many optimiser steps, whatever the epochs (`bench.schedule`): MedMNIST v2
    # (Yang et al., Sci Data 2023) trains its benchmark models 100 epochs at batch 128, which
    # gives its smallest 2D training set (BreastMNIST, 546 images) 500 steps, its fewest.
    min_steps: int = 500
    checkpoint: str = DEFAULT_CHECKPOINT  # the stage-1 epoch kept (`bench.checkpoints`)
    weights: str = ""  # a torchvision state dict file; empty: torch's hub cache

    def as_dict(self) -> dict[str, Any]:
        """The recorded form (part of every run's config); `weights` only when a file is
        given, so the records of runs without one keep their form."""
        recorded = dataclasses.asdict(self)
        if not self.weights:
            del recorded["weights"]
        return recorded


SETTING_NAMES = tuple(f.name for f in dataclasses.fields(TrainingSettings))
_DEFAULTS = TrainingSettings()


def check_settings(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate a table of settings (names, types, ranges); errors name `where` and the field."""
    unknown = sorted(set(table) - set(SETTING_NAMES))
    if unknown:
        raise BenchError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(SETTING_NAMES)}."
        )
    checked: dict[str, Any] = {}
    for name, value in table.items():
        default = getattr(_DEFAULTS, name)
        kind = type(default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise BenchError(f"{where}: setting {name!r} must be {kind.__name__}, got {value!r}.")
        if name == "checkpoint" and value not in CHECKPOINT_RULES:
            raise BenchError(
                f"{where}: setting 'checkpoint' = {value!r} is not a checkpoint rule; "
                f"use one of {', '.join(CHECKPOINT_RULES)}."
            )
        if name in _RANGES:
            valid, advice = _RANGES[name]
            if not (math.isfinite(value) and valid(value)):
                raise BenchError(
                    f"{where}: setting {name!r} = {value!r} is out of range; {advice}."
                )
        checked[name] = value
    return checked


# Each numeric setting's valid range, as a test and the advice given when a value fails it.
_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "image_size": (lambda v: v >= 8, "use 8 or more pixels"),
    "epochs": (lambda v: v >= 1, "use 1 or more"),
    "batch_size": (lambda v: v >= 2, "use 2 or more"),
    "lr": (lambda v: v > 0, "use a finite number above 0"),
    "momentum": (lambda v: 0 <= v < 1, "use a number in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, "use a finite number, 0 or more"),
    "warmup_epochs": (lambda v: v >= 0, "use 0 or more"),
    "min_steps": (lambda v: v >= 0, "use 0 or more (0: the epochs alone decide)"),
}

DEFAULT_PROFILE = "cpu"  # the dataset spec's [training] table itself


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings of a run, and one line per tuned value the command line replaced."""

    settings: TrainingSettings
    notes: tuple[str, ...] = ()


def resolve_settings(
    dataset_defaults: Mapping[str, Any],
    tuned: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    tuned_name: str = "",
) -> ResolvedSettings:
    """Built-in defaults < the dataset spec's `[training]` (with its chosen profile) < a tuned
    recipe's settings < the command line (`None` values are not given). A weights file
    implies pretrained weights."""
    given = check_settings(
        {k: v for k, v in (overrides or {}).items() if v is not None}, "command line"
    )
    if given.get("weights"):
        if given.get("pretrained") is False:
            raise BenchError("--weights loads pretrained weights; drop --no-pretrained.")
        given["pretrained"] = True
    settings = TrainingSettings(**{**dataset_defaults, **(tuned or {}), **given})
    notes = tuple(
        f"{tuned_name}: tuned with {name} = {tuned[name]!r}; the command line's {value!r} is used"
        for name, value in given.items()
        if tuned and name in tuned and tuned[name] != value
    )
    return ResolvedSettings(settings, notes)
