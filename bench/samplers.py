"""Epoch orderings of training indices: plain shuffling or class-balanced resampling."""

from __future__ import annotations

from collections.abc import Callable

import torch


def instance_order(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Every training item once, shuffled: each image equally likely (the default)."""
    return torch.randperm(len(labels), generator=generator)


def class_balanced_order(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """N draws with replacement: a class uniformly, then an item of it uniformly.

    Every class is equally likely in every batch (Kang et al. 2020's class-balanced sampling).
    """
    num_classes = int(labels.max()) + 1
    by_class = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    present = torch.nonzero(counts).flatten()
    classes = present[torch.randint(len(present), (len(labels),), generator=generator)]
    offsets = (torch.rand(len(labels), generator=generator) * counts[classes]).long()
    return by_class[starts[classes] + offsets]


SAMPLERS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "instance": instance_order,
    "class-balanced": class_balanced_order,
}
