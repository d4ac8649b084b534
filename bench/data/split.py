"""Stratified, group-aware train/val/test splits drawn from `data_seed`, saved as manifests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError
from bench.core.files import stable_hash, write_json_atomic
from bench.data.imageset import ImageSet

SPLITS = ("train", "val", "test")
KEPT_SPLITS = ("val", "test")  # a source's own splits, kept as given unless a spec says otherwise


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
    imageset: ImageSet,
    val_fraction: float,
    test_fraction: float,
    data_seed: int,
    keep: tuple[str, ...] = KEPT_SPLITS,
) -> Split:
    """Assign whole groups to splits so that each class gets about the requested fractions.

    Splits the source assigns (`imageset.given_splits`) and `keep` names are kept as they are;
    the others are drawn from the items left unassigned or assigned to a split not kept (so
    with `keep=("test",)` a source's train and val are pooled and redrawn for each data seed,
    its test set fixed). Fractions are of the pool drawn from. A group takes its most
    frequent label. Within each class the groups are shuffled with `data_seed`, then test is
    filled to its target image count, then val, and the rest is train; every drawn split
    receives at least one group of every class.
    """
    labels = imageset.labels.numpy()
    given = tuple(s if s in keep else "" for s in imageset.given_splits) or ("",) * len(labels)
    assigned: dict[str, list[int]] = {
        name: [i for i, s in enumerate(given) if s == name] for name in SPLITS
    }
    to_draw = [name for name in ("test", "val") if not assigned[name]]
    members: dict[str, list[int]] = {}
    for index, group in enumerate(imageset.groups):
        if given[index] in ("", "train"):
            members.setdefault(group, []).append(index)
    assigned["train"] = []
    group_names = sorted(members)
    group_label = {
        g: Counter(labels[members[g]].tolist()).most_common(1)[0][0] for g in group_names
    }
    rng = np.random.default_rng(data_seed)
    fractions = {"test": test_fraction, "val": val_fraction}
    for label in range(imageset.num_classes):
        groups = [g for g in group_names if group_label[g] == label]
        if to_draw and len(groups) < len(to_draw) + 1:
            where = imageset.provenance.get("root", "")
            raise BenchError(
                f"{imageset.name}{f' ({where})' if where else ''}: class "
                f"{imageset.class_names[label]!r} has {len(groups)} group(s) (images of "
                f"distinct lesions/patients) to draw {', '.join(to_draw)} and train from; each "
                "split needs one. Add data for this class or drop it from the dataset spec's "
                "classes."
            )
        if to_draw:
            groups = [groups[i] for i in rng.permutation(len(groups))]
        total = sum(len(members[g]) for g in groups)
        position = 0
        for rank, name in enumerate(to_draw):
            target, taken = fractions[name] * total, 0
            # Stop early enough to leave at least one group for each later split.
            while position < len(groups) - (len(to_draw) - rank) and (
                taken == 0 or taken + len(members[groups[position]]) / 2 <= target
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
