"""The in-memory dataset every method trains on: uint8 images, labels, groups, class names."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class ImageSet:
    """Images held as one uint8 tensor (N×C×H×W) with per-item labels, ids and groups.

    `groups` holds the unit that must not straddle splits (HAM10000's `lesion_id`); items
    without a group are their own group. `given_splits` holds the split a source assigns to
    each item (`train`, `val`, `test` or empty), or nothing when it assigns none.
    `fingerprint` identifies the content for cache and run keys; `provenance` says where the
    data came from and what was skipped (recorded in `run.json`).
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    item_ids: list[str]
    groups: list[str]
    class_names: tuple[str, ...]
    fingerprint: str
    given_splits: tuple[str, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"{self.name}: images must be uint8 N×C×H×W, got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if not (self.images.shape[0] == n == len(self.item_ids) == len(self.groups)):
            raise ValueError(f"{self.name}: images, labels, item ids and groups differ in length")
        if self.given_splits and len(self.given_splits) != n:
            raise ValueError(f"{self.name}: given_splits must have one entry per item")

    def with_provenance(self, provenance: dict[str, Any]) -> ImageSet:
        """The same images with `provenance` replaced."""
        return replace(self, provenance=provenance)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def class_counts(self, indices: np.ndarray | None = None) -> np.ndarray:
        """Images per class, over all items or over `indices`."""
        labels = self.labels.numpy() if indices is None else self.labels.numpy()[indices]
        return np.bincount(labels, minlength=self.num_classes)
