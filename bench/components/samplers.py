"""Epoch orderings of training indices: shuffling, class-balanced and m-per-class resampling."""

from __future__ import annotations

import torch


def instance_order(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Every training item once, shuffled: each image equally likely (the default)."""
    return torch.randperm(len(labels), generator=generator)


def _uniform_classes(labels: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """`n` classes drawn uniformly among those present in `labels`."""
    present = torch.unique(labels)
    return present[torch.randint(len(present), (n,), generator=generator)]


def _item_of_each(
    labels: torch.Tensor, classes: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """For each entry of `classes`, a uniformly drawn index of an item of that class."""
    by_class = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=int(labels.max()) + 1)
    starts = torch.cumsum(counts, 0) - counts
    offsets = (torch.rand(len(classes), generator=generator) * counts[classes]).long()
    return by_class[starts[classes] + offsets]


def class_balanced_order(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """N draws with replacement: a class uniformly, then an item of it uniformly.

    Every class is equally likely in every batch (Kang et al. 2020's class-balanced sampling).
    """
    classes = _uniform_classes(labels, len(labels), generator)
    return _item_of_each(labels, classes, generator)


def m_per_class_order(labels: torch.Tensor, generator: torch.Generator, *, m: int) -> torch.Tensor:
    """N indices in blocks of `m` items of one class, each block's class drawn uniformly.

    A batch whose size is a multiple of `m` holds several items of each class it contains, as
    pair-based metric losses need. Classes are drawn uniformly, so this sampler re-balances by
    itself (results flag it); items are drawn with replacement.
    """
    if m < 1:
        raise ValueError(f"m must be positive, got {m}")
    blocks = _uniform_classes(labels, -(-len(labels) // m), generator)
    return _item_of_each(labels, blocks.repeat_interleave(m), generator)[: len(labels)]
