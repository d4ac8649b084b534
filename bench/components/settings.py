"""Training settings: everything about stage 1 that is not the recipe (input size, backbone,
optimiser, schedule), with their built-in defaults, and how defaults, a dataset spec, a tuned
recipe and the command line are layered into the settings of one run."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.components.catalogue import BACKBONES
from bench.components.checkpoints import CHECKPOINT_RULES, DEFAULT_CHECKPOINT
from bench.core.errors import BenchError
from bench.core.validation import Field, check_fields


@dataclass(frozen=True)
class TrainingSettings:
    """Stage-1 training settings; the one place their built-in defaults live.

    A dataset spec's `[training]` table replaces some, a method recipe's `[training]` table
    others, a tuned recipe's `[settings]` table others, and command-line overrides come last.
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
    # At least this many optimiser steps, whatever the epochs (`bench.stage1.schedule`): MedMNIST v2
    # (Yang et al., Sci Data 2023) trains its benchmark models 100 epochs at batch 128, which
    # gives its smallest 2D training set (BreastMNIST, 546 images) 500 steps, its fewest.
    min_steps: int = 500
    checkpoint: str = DEFAULT_CHECKPOINT  # the stage-1 epoch kept (`bench.components.checkpoints`)
    weights: str = ""  # a torchvision state dict file; empty: torch's hub cache
    # Whether the images have a canonical orientation (`bench.stage1.augment`): `free`
    # (dermoscopy, microscopy, fundus: any flip or rotation keeps the label) or `fixed`
    # (radiology: anatomy has a left and a right, so no flips and small rotations only).
    orientation: str = "free"

    def as_dict(self) -> dict[str, Any]:
        """The recorded form (part of every run's config); `weights` only when a file is
        given, so the records of runs without one keep their form."""
        recorded = dataclasses.asdict(self)
        if not self.weights:
            del recorded["weights"]
        if self.orientation == "free":  # likewise the records of free-orientation runs
            del recorded["orientation"]
        return recorded


SETTING_NAMES = tuple(f.name for f in dataclasses.fields(TrainingSettings))


# What each setting may hold, wherever it is written (spec, profile, tuned recipe, command
# line). Upper bounds only catch typos (10**13 steps would never end).
SETTING_FIELDS: dict[str, Field] = {
    "image_size": Field(int, 8, 1024, advice="use 8 to 1024 pixels"),
    "backbone": Field(str, choices=tuple(BACKBONES)),
    "pretrained": Field(bool),
    "epochs": Field(int, 1, 10_000),
    "batch_size": Field(int, 2, 65_536),
    "lr": Field(float, 1e-12, advice="use a finite number above 0"),
    "momentum": Field(float, 0.0, 0.999, advice="use a number in [0, 1)"),
    "weight_decay": Field(float, 0.0, 1.0),
    "warmup_epochs": Field(int, 0, 10_000),
    "min_steps": Field(int, 0, 10_000_000, advice="use 0 (the epochs alone decide) up to 10000000"),
    "checkpoint": Field(str, choices=tuple(CHECKPOINT_RULES)),
    "weights": Field(str),
    "orientation": Field(str, choices=("free", "fixed")),
}
assert set(SETTING_FIELDS) == set(SETTING_NAMES)


def check_settings(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate a table of settings (names, types, ranges, backbone names); errors name
    `where` and the field."""
    return check_fields(dict(table), SETTING_FIELDS, where)


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
    recipe: Mapping[str, Any] | None = None,
) -> ResolvedSettings:
    """Built-in defaults < the dataset spec's `[training]` (with its chosen profile) < the
    settings the method's recipe fixes (its `[training]`) < a tuned recipe's settings < the
    command line (`None` values are not given). A weights file implies pretrained weights.
    Each recipe or tuned value the command line replaces gets a note, named `tuned_name`."""
    given = check_settings(
        {k: v for k, v in (overrides or {}).items() if v is not None}, "command line"
    )
    if given.get("weights"):
        if given.get("pretrained") is False:
            raise BenchError(
                "--weights loads pretrained weights and --no-pretrained refuses them: drop one."
            )
        given["pretrained"] = True
    settings = TrainingSettings(**{**dataset_defaults, **(recipe or {}), **(tuned or {}), **given})
    layers = (("its recipe sets", recipe or {}), ("tuned with", tuned or {}))
    notes = tuple(
        f"{tuned_name}: {how} {name} = {layer[name]!r}; the command line's {value!r} is used"
        for how, layer in layers
        for name, value in given.items()
        if name in layer and layer[name] != value
    )
    return ResolvedSettings(settings, notes)
