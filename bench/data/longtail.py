"""The long-tailed protocol: the training classes subsampled to an exponential profile.

Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss", NeurIPS
2019 (CIFAR-10/100-LT; `imbalance_cifar.py`, `get_img_num_per_cls`), as MONICA (Ju et al. 2024,
arXiv 2410.02010) applies it to MedMNIST at R = 100: the classes, ordered by training frequency
(i = 0 the most frequent, ties by class order), keep

    n_i = floor(n_max * (1/R) ** (i / (C - 1)))

training images, at least 1, where n_max is the largest class's count, C the number of
classes with training images and R the imbalance ratio n_max / n_min. Floor, as Cao et al.'s
`int(...)`, so their published counts come out (CIFAR-10-LT at R = 100: 5000, 2997, ..., 50).
Validation and test are not touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.core.validation import Field

LONGTAIL_RATIO = Field(float, 1, 1e6, advice="an imbalance ratio n_max/n_min is 1 or more")


def ratio_of(counts: Sequence[int]) -> float:
    """The imbalance ratio n_max / n_min of class counts, over the classes present (1 if none)."""
    present = [c for c in counts if c]
    return max(present) / min(present) if present else 1.0


def profile(n_max: int, classes: int, ratio: float) -> list[int]:
    """The counts the protocol keeps of `classes` classes, most frequent first."""
    if classes < 2:
        return [n_max] * classes
    return [max(1, int(n_max * (1 / ratio) ** (i / (classes - 1)))) for i in range(classes)]


@dataclass(frozen=True)
class LongTail:
    """What the protocol did to one training split: the ratio asked, each class's training
    images before (`available`), its target and what was kept (by class index; a class
    without training images has target 0), and whether it applied at all (not when the ratio
    is at or below the training set's own)."""

    ratio: float
    available: tuple[int, ...]
    targets: tuple[int, ...]
    kept: tuple[int, ...]
    applied: bool

    @property
    def natural(self) -> float:
        """The training set's own ratio n_max / n_min, before the protocol."""
        return ratio_of(self.available)

    @property
    def achieved(self) -> float:
        """The ratio n_max / n_min of what was kept."""
        return ratio_of(self.kept)

    @property
    def capped(self) -> list[int]:
        """The classes whose target is above what they have (all of theirs is kept)."""
        pairs = zip(self.targets, self.available, strict=True)
        return [c for c, (target, has) in enumerate(pairs) if target > has]

    def record(self) -> dict[str, Any]:
        """The split manifest's account of the protocol (counts in class order, as the
        manifest's own)."""
        return {
            "ratio": self.ratio,
            "applied": self.applied,
            "natural_ratio": round(self.natural, 4),
            "achieved_ratio": round(self.achieved, 4),
            "available": list(self.available),
            "targets": list(self.targets),
            "kept": list(self.kept),
        }

    def note(self, where: str, class_names: Sequence[str]) -> str:
        """One line saying what the protocol did at `where` (the dataset and data seed)."""
        if not self.applied:
            return (
                f"{where}: imbalance ratio {self.ratio:g} is at or below the training set's own "
                f"({self.natural:.2f}): the training classes are kept as they are."
            )
        line = (
            f"{where}: training classes subsampled to imbalance ratio {self.ratio:g} (Cao et "
            f"al. 2019): {sum(self.available)} -> {sum(self.kept)} images, achieved ratio "
            f"{self.achieved:.2f}"
        )
        if capped := self.capped:
            line += "; capped at what they have: " + ", ".join(
                f"{class_names[c]} (target {self.targets[c]}, has {self.available[c]})"
                for c in capped
            )
        return line + "."


def _take(sizes: list[int], target: int, rng: np.random.Generator) -> list[int]:
    """Positions of the groups kept (at least one) whose images come nearest `target` (ties:
    the lower count), drawn by `rng`: in a shuffled order, each group that fits under the
    target, which with enough small groups (one image per group, always) is exactly the
    target; otherwise a subset-sum over that order finds the nearest count."""
    order = [int(k) for k in rng.permutation(len(sizes))]
    kept, taken = [], 0
    for k in order:
        if taken + sizes[k] <= target:
            kept.append(k)
            taken += sizes[k]
    return kept if taken == target else _nearest(sizes, target, order)


def _nearest(sizes: list[int], target: int, order: list[int]) -> list[int]:
    """Positions of groups (at least one) whose total is the reachable count nearest `target`
    (ties: the lower), preferring groups later in `order`. Counts above target + the largest
    group are never nearest (dropping a group of such a set comes nearer), so the reachable
    counts are kept as bits up to there, one set per prefix of `order`."""
    mask = (1 << (target + max(sizes) + 1)) - 1
    reach = [1]  # bit s: some groups among the first j of `order` hold s images
    for k in order:
        reach.append((reach[-1] | reach[-1] << sizes[k]) & mask)
    reachable = [count for count in range(1, mask.bit_length()) if reach[-1] >> count & 1]
    count = min(reachable, key=lambda c: (abs(c - target), c))
    kept = []
    for j in range(len(order) - 1, -1, -1):
        size = sizes[order[j]]
        if count >= size and reach[j] >> (count - size) & 1:
            kept.append(order[j])
            count -= size
    return kept


def subsample(
    groups_by_class: Sequence[Sequence[list[int]]], ratio: float, rng: np.random.Generator
) -> tuple[list[int], LongTail]:
    """The training items kept by the protocol at `ratio`, and its account. `groups_by_class`
    holds, for each class, its training groups (each a list of item indices; a group counts
    for the class of its most frequent label, as in the split). Whole groups are kept or
    dropped; a class whose target is above what it has keeps all of it (capped)."""
    ratio = LONGTAIL_RATIO.check(ratio, "the long-tail imbalance ratio")
    available = tuple(sum(len(group) for group in groups) for groups in groups_by_class)
    if ratio <= ratio_of(available):
        everything = [i for groups in groups_by_class for group in groups for i in group]
        return everything, LongTail(ratio, available, available, available, applied=False)
    order = sorted((c for c, n in enumerate(available) if n), key=lambda c: -available[c])
    targets = list(available)
    for c, target in zip(order, profile(available[order[0]], len(order), ratio), strict=True):
        targets[c] = target
    kept_items, kept = [], []
    for c, groups in enumerate(groups_by_class):
        if targets[c] >= available[c]:
            chosen = list(groups)
        else:
            chosen = [groups[k] for k in _take([len(g) for g in groups], targets[c], rng)]
        kept.append(sum(len(group) for group in chosen))
        kept_items += [i for group in chosen for i in group]
    return kept_items, LongTail(ratio, available, tuple(targets), tuple(kept), applied=True)
