"""Stratified, group-aware train/val/test splits drawn from `data_seed` (the training classes
optionally long-tailed), saved as manifests and described for `bench data info`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.core.errors import BenchError
from bench.core.files import stable_hash, write_json_atomic
from bench.data.imageset import ImageSet
from bench.data.longtail import LongTail, ratio_of, subsample

if TYPE_CHECKING:
    from bench.data.source import Source
    from bench.data.specs import DatasetSpec

SPLITS = ("train", "val", "test")
KEPT_SPLITS = ("val", "test")  # a source's own splits, kept as given unless a spec says otherwise


@dataclass(frozen=True)
class Items:
    """What a split is drawn from, without the images: each item's label, id, group and the
    split its source gives (as in `ImageSet`), the class names, and where the data is (for
    messages)."""

    name: str
    labels: np.ndarray
    item_ids: list[str]
    groups: list[str]
    class_names: tuple[str, ...]
    given_splits: tuple[str, ...] = ()
    where: str = ""

    @classmethod
    def of(cls, imageset: ImageSet) -> Items:
        """The items of an image set."""
        return cls(
            imageset.name,
            imageset.labels.numpy(),
            imageset.item_ids,
            imageset.groups,
            imageset.class_names,
            imageset.given_splits,
            imageset.provenance.get("root", ""),
        )

    @classmethod
    def of_source(cls, source: Source, name: str) -> Items:
        """The items of a located dataset's item table, as loading keeps them (every row, no
        image decoded)."""
        table = source.table
        index = {c: k for k, c in enumerate(source.class_names)}
        given = tuple(table["split"]) if (table["split"] != "").any() else ()
        return cls(
            name,
            np.asarray([index[c] for c in table["label"]], dtype=np.int64),
            list(table["item_id"]),
            list(table["group"]),
            source.class_names,
            given,
            str(source.root),
        )


@dataclass(frozen=True)
class Split:
    """Item indices of each split and the hash that identifies the assignment; `longtail`
    says what the long-tailed protocol did to train, when a ratio was asked."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    data_seed: int
    digest: str
    longtail: LongTail | None = None

    def indices(self, name: str) -> np.ndarray:
        """Indices of split `name` (train, val or test)."""
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def make_split(
    imageset: ImageSet | Items,
    val_fraction: float,
    test_fraction: float,
    data_seed: int,
    keep: tuple[str, ...] = KEPT_SPLITS,
    longtail_ratio: float | None = None,
) -> Split:
    """Assign whole groups to splits so that each class gets about the requested fractions.

    Splits the source assigns (`imageset.given_splits`) and `keep` names are kept as they are;
    the others are drawn from the items left unassigned or assigned to a split not kept (so
    with `keep=("test",)` a source's train and val are pooled and redrawn for each data seed,
    its test set fixed). Fractions are of the pool drawn from. A group takes its most
    frequent label. Within each class the groups are shuffled with `data_seed`, then test is
    filled to its target image count, then val, and the rest is train; every drawn split
    receives at least one group of every class. With `longtail_ratio`, the training groups
    are then subsampled by the long-tailed protocol (`bench.data.longtail`), drawn by the
    same seeded generator, and the ratio enters the digest.
    """
    items = imageset if isinstance(imageset, Items) else Items.of(imageset)
    given = tuple(s if s in keep else "" for s in items.given_splits) or ("",) * len(items.labels)
    assigned: dict[str, list[int]] = {
        name: [i for i, s in enumerate(given) if s == name] for name in SPLITS
    }
    to_draw = [name for name in ("test", "val") if not assigned[name]]
    members: dict[str, list[int]] = {}
    for index, group in enumerate(items.groups):
        if given[index] in ("", "train"):
            members.setdefault(group, []).append(index)
    group_names = sorted(members)
    group_label = {
        g: Counter(items.labels[members[g]].tolist()).most_common(1)[0][0] for g in group_names
    }
    rng = np.random.default_rng(data_seed)
    fractions = {"test": test_fraction, "val": val_fraction}
    train_groups: list[list[list[int]]] = []
    for label in range(len(items.class_names)):
        groups = [g for g in group_names if group_label[g] == label]
        if to_draw and len(groups) < len(to_draw) + 1:
            where = f" ({items.where})" if items.where else ""
            raise BenchError(
                f"{items.name}{where}: class {items.class_names[label]!r} has {len(groups)} "
                f"group(s) (images of distinct lesions/patients) to draw {', '.join(to_draw)} "
                "and train from; each split needs one. Add data for this class or drop it from "
                "the dataset spec's classes."
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
        train_groups.append([members[group] for group in groups[position:]])
    longtail = None
    if longtail_ratio is None:
        assigned["train"] = [i for groups in train_groups for group in groups for i in group]
    else:
        assigned["train"], longtail = subsample(train_groups, longtail_ratio, rng)
    arrays = {name: np.sort(np.asarray(assigned[name], dtype=np.int64)) for name in SPLITS}
    listed: dict[str, object] = {name: [items.item_ids[i] for i in arrays[name]] for name in SPLITS}
    if longtail is not None:  # splits drawn without the protocol keep their digests
        listed["longtail"] = longtail.ratio
    return Split(data_seed=data_seed, digest=stable_hash(listed), longtail=longtail, **arrays)


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
                **({"longtail": split.longtail.record()} if split.longtail else {}),
            },
        )
    return path


def describe_split(spec: DatasetSpec, source: Source, data_seed: int) -> list[str]:
    """`bench data info --data-seed`: the images per class of each split `data_seed` draws
    from the item table (no image decoded), and the training ratio n_max/n_min, with what
    the long-tailed protocol did when the spec (or `--imbalance`) asks for it."""
    items = Items.of_source(source, spec.name)
    split = spec.split(items, data_seed)
    counts = {
        name: np.bincount(items.labels[split.indices(name)], minlength=len(items.class_names))
        for name in SPLITS
    }
    longtail = split.longtail
    columns = ["train", "val", "test"]
    if longtail:
        counts["before"] = np.asarray(longtail.available)
        columns.insert(0, "before")
    width = max(len(c) for c in ("class", *items.class_names))
    heading = f"  {'class':{width}}" + "".join(f"  {c:>7}" for c in columns)
    lines = [f"split of data seed {data_seed}, images per class:", heading]
    for k, name in enumerate(items.class_names):
        lines.append(f"  {name:{width}}" + "".join(f"  {counts[c][k]:>7}" for c in columns))
    lines.append(f"training ratio n_max/n_min: {ratio_of(counts['train'].tolist()):.2f}")
    if longtail:
        lines.append(longtail.note(f"{spec.name}, data seed {data_seed}", items.class_names))
    return lines
