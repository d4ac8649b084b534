"""Stratified, group-aware train/val/test splits drawn from `data_seed`, saved as manifests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data.imageset import ImageSet
from bench.errors import BenchError
from bench.files import stable_hash, write_json_atomic

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Item indices of each split and the hash that identifies the assignment."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    data_seed: int
    digest: str

    def indices(self, name: str) -> np.ndarray:
        """Indices of split `name` (train, val or test)."""
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def make_split(
    imageset: ImageSet, val_fraction: float, test_fraction: float, data_seed: int
) -> Split:
    """Assign whole groups to splits so that each class gets about the requested fractions.

    A group takes its most frequent label. Within each class the groups are shuffled with
    `data_seed`, then test is filled to its target image count, then val, and the rest is train;
    every split receives at least one group of every class.
    """
    labels = imageset.labels.numpy()
    members: dict[str, list[int]] = {}
    for index, group in enumerate(imageset.groups):
        members.setdefault(group, []).append(index)
    group_names = sorted(members)
    group_label = {
        g: Counter(labels[members[g]].tolist()).most_common(1)[0][0] for g in group_names
    }
    rng = np.random.default_rng(data_seed)
    assigned: dict[str, list[int]] = {name: [] for name in SPLITS}
    for label in range(imageset.num_classes):
        groups = [g for g in group_names if group_label[g] == label]
        if len(groups) < len(SPLITS):
            raise BenchError(
                f"{imageset.name}: class {imageset.class_names[label]!r} has {len(groups)} "
                f"group(s) (images of distinct lesions/patients); train, val and test each need "
                "one. Add data for this class or drop it from the dataset spec's classes."
            )
        groups = [groups[i] for i in rng.permutation(len(groups))]
        total = sum(len(members[g]) for g in groups)
        targets = {"test": test_fraction * total, "val": val_fraction * total}
        position = 0
        for name in ("test", "val"):
            taken = 0
            # Stop early enough to leave at least one group for each later split.
            while position < len(groups) - (2 if name == "test" else 1) and (
                taken == 0 or taken + len(members[groups[position]]) / 2 <= targets[name]
            ):
                taken += len(members[groups[position]])
                assigned[name] += members[groups[position]]
                position += 1
        for group in groups[position:]:
            assigned["train"] += members[group]
    arrays = {name: np.sort(np.asarray(assigned[name], dtype=np.int64)) for name in SPLITS}
    digest = stable_hash({name: [imageset.item_ids[i] for i in arrays[name]] for name in SPLITS})
    return Split(data_seed=data_seed, digest=digest, **arrays)


def write_manifest(split: Split, imageset: ImageSet, folder: Path) -> Path:
    """Save the split's item ids (and its hash) as `folder/split-<hash>.json`; returns the path."""
    path = folder / f"split-{split.digest}.json"
    if not path.exists():
        write_json_atomic(
            path,
            {
                "dataset": imageset.name,
                "data_fingerprint": imageset.fingerprint,
                "data_seed": split.data_seed,
                "hash": split.digest,
                "counts": {
                    name: imageset.class_counts(split.indices(name)).tolist() for name in SPLITS
                },
                "items": {
                    name: [imageset.item_ids[i] for i in split.indices(name)] for name in SPLITS
                },
            },
        )
    return path
