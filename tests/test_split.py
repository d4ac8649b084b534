"""Group-aware stratified splits: no leakage, every class everywhere, reproducible manifests."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.errors import BenchError
from bench.data.imageset import ImageSet
from bench.data.split import KEPT_SPLITS, SPLITS, make_split, write_manifest


def _imageset(labels: list[int], groups: list[str]) -> ImageSet:
    n = len(labels)
    return ImageSet(
        name="toy",
        images=torch.zeros(n, 3, 2, 2, dtype=torch.uint8),
        labels=torch.tensor(labels),
        item_ids=[f"i{k}" for k in range(n)],
        groups=groups,
        class_names=("a", "b"),
        fingerprint="toy",
    )


def _grouped(seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for g in range(200):
        label = 0 if g < 160 else 1
        for _ in range(rng.integers(1, 5)):  # 1 to 4 images per lesion
            labels.append(label)
            groups.append(f"lesion{g}")
    return _imageset(labels, groups)


def test_no_group_straddles_splits_and_every_class_is_everywhere() -> None:
    imageset = _grouped()
    split = make_split(imageset, 0.15, 0.15, data_seed=3)
    owner: dict[str, str] = {}
    for name in SPLITS:
        for index in split.indices(name):
            assert owner.setdefault(imageset.groups[index], name) == name
        assert set(imageset.labels[split.indices(name)].tolist()) == {0, 1}
    assert sum(len(split.indices(n)) for n in SPLITS) == len(imageset.labels)


def test_fractions_are_respected_per_class() -> None:
    imageset = _grouped()
    split = make_split(imageset, 0.2, 0.3, data_seed=0)
    for label in (0, 1):
        total = int((imageset.labels == label).sum())
        for name, fraction in (("val", 0.2), ("test", 0.3)):
            got = int((imageset.labels[split.indices(name)] == label).sum())
            assert abs(got - fraction * total) <= 4  # at most about one lesion off


def test_same_seed_same_split_other_seed_other_split() -> None:
    imageset = _grouped()
    first, again = make_split(imageset, 0.15, 0.15, 5), make_split(imageset, 0.15, 0.15, 5)
    other = make_split(imageset, 0.15, 0.15, 6)
    assert first.digest == again.digest and np.array_equal(first.test, again.test)
    assert first.digest != other.digest


def test_class_with_too_few_groups_is_an_error_naming_the_class() -> None:
    imageset = _imageset([0] * 10 + [1] * 4, [f"g{k}" for k in range(10)] + ["x", "x", "y", "y"])
    with pytest.raises(BenchError, match="class 'b' has 2 group"):
        make_split(imageset, 0.15, 0.15, 0)


def test_manifest_reproduces_from_its_seed(tmp_path: Path) -> None:
    imageset = _grouped()
    split = make_split(imageset, 0.15, 0.15, data_seed=11)
    manifest = json.loads(write_manifest(split, imageset, tmp_path).read_text())
    redrawn = make_split(imageset, 0.15, 0.15, data_seed=manifest["data_seed"])
    assert manifest["hash"] == redrawn.digest
    for name in SPLITS:
        assert manifest["items"][name] == [imageset.item_ids[i] for i in redrawn.indices(name)]


def test_kept_test_set_stays_while_train_and_val_are_redrawn_per_seed() -> None:
    base = _grouped()
    n = len(base.labels)
    where = {
        f"lesion{g}": "test" if g % 5 == 0 else "val" if g % 7 == 0 else "train" for g in range(200)
    }
    given = tuple(where[group] for group in base.groups)  # whole lesions, as loaders ensure
    imageset = dataclasses.replace(base, given_splits=given)
    official = make_split(imageset, 0.15, 0.15, data_seed=0)  # default: val and test as given
    assert official.val.tolist() == [k for k, s in enumerate(given) if s == "val"]
    assert official.digest == make_split(imageset, 0.15, 0.15, data_seed=1).digest
    test = [k for k, s in enumerate(given) if s == "test"]
    drawn = [make_split(imageset, 0.15, 0.15, seed, keep=("test",)) for seed in range(3)]
    assert len({split.digest for split in drawn}) == 3  # distinct splits ...
    for split in drawn:
        assert split.test.tolist() == test  # ... over the same test set
        assert sum(len(split.indices(name)) for name in SPLITS) == n  # given val pooled, not lost
        assert len(split.val) == pytest.approx(0.15 * (n - len(test)), abs=8)
        owner: dict[str, str] = {}
        for name in SPLITS:  # val is drawn by whole groups from the pool
            for index in split.indices(name):
                assert owner.setdefault(imageset.groups[index], name) == name


def test_digests_are_those_drawn_before_the_long_tail_protocol() -> None:
    # Digests name the manifests and enter run ids: without a long-tail ratio a split is
    # the one drawn before the protocol existed, to the byte (values recorded then).
    imageset = _grouped()
    assert [make_split(imageset, 0.15, 0.15, seed).digest for seed in (0, 3)] == [
        "5250c8120d93",
        "6c6c718b73f3",
    ]
    where = {
        f"lesion{g}": "test" if g % 5 == 0 else "val" if g % 7 == 0 else "train" for g in range(200)
    }
    given = dataclasses.replace(imageset, given_splits=tuple(where[g] for g in imageset.groups))
    keeps = (KEPT_SPLITS, ("test",), ())
    digests = [make_split(given, 0.15, 0.15, 1, keep).digest for keep in keeps]
    assert digests == ["6fb9bb5c1ca5", "be8d0213e761", "3a50ebb22e18"]
