"""The stage-1 schedule: how many epochs and optimiser steps a training runs, and the learning
rate at each step.

A schedule by epochs alone starves small data: 20 epochs of a 546-image set at batch 128 are
about 100 steps, too few for a network trained from scratch to leave the majority class
(issue 19). So stage 1 runs its settings' epochs, but at least `min_steps` optimiser steps:
when the epochs fall short, the schedule is stretched to whole epochs that reach the floor,
and the warm-up keeps its share of training. Warm-up and cosine decay run over the steps
actually taken.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from bench.components.settings import TrainingSettings


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up to `base_lr`, then cosine decay to zero (per optimisation step)."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * base_lr * (1 + math.cos(math.pi * progress))


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in one pass over `n` images; a trailing batch of one image would break batch
    norm, so it is dropped."""
    return n // batch_size + (1 if n % batch_size > 1 else 0)


@dataclass(frozen=True)
class Schedule:
    """The epochs and optimiser steps one stage-1 training runs (recorded in `run.json`)."""

    steps_per_epoch: int
    epochs: int
    warmup_steps: int
    stretched: bool  # the settings' epochs fell short of min_steps

    @property
    def total_steps(self) -> int:
        """Optimiser steps in all."""
        return self.steps_per_epoch * self.epochs

    @classmethod
    def plan(cls, n_train: int, settings: TrainingSettings) -> Schedule:
        """The schedule of `settings` over `n_train` images: `settings.epochs`, or as many
        more whole epochs as `settings.min_steps` needs; the warm-up takes the same share of
        the steps as `warmup_epochs` of `epochs`."""
        per_epoch = max(1, steps_per_epoch(n_train, settings.batch_size))
        epochs = max(settings.epochs, math.ceil(settings.min_steps / per_epoch))
        share = min(1.0, settings.warmup_epochs / settings.epochs)
        return cls(per_epoch, epochs, round(share * per_epoch * epochs), epochs > settings.epochs)

    def lr(self, step: int, base_lr: float) -> float:
        """The learning rate at optimiser step `step` (counted from 0)."""
        return lr_at(step, self.total_steps, self.warmup_steps, base_lr)

    def as_dict(self) -> dict[str, Any]:
        """The recorded form."""
        return {**asdict(self), "total_steps": self.total_steps}
