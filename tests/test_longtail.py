"""The long-tailed protocol (Cao et al. 2019): the training classes subsampled to an exponential
profile, exactly, by whole groups, drawn by the data seed, in the split's digest and the run
id, from `--imbalance` or a spec's `[longtail] ratio`; validation and test untouched."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import load_images, run_tiny

from bench.cli.main import main
from bench.core.errors import BenchError
from bench.data.imageset import ImageSet
from bench.data.longtail import profile
from bench.data.specs import get_spec
from bench.data.split import SPLITS, Split, make_split, write_manifest
from bench.experiment.conditions import Conditions
from bench.recipes.methods import MethodRegistry
from bench.run.plan import RunOptions, plan

CLASSES = ("a", "b", "c", "d", "e")
TRAIN = (40, 100, 20, 80, 60)  # training images per class, not in frequency order


def _imageset(train: tuple[int, ...] = TRAIN, group_size: int = 1, held: int = 3) -> ImageSet:
    """Each class: `train` images given as train (in groups of `group_size`), then `held`
    given as val and `held` as test; the source's val and test are kept, so train is the rest."""
    labels, groups, given = [], [], []
    for label, count in enumerate(train):
        for k in range(count):
            labels.append(label)
            groups.append(f"c{label}g{k // group_size}")
            given.append("train")
        for split in ("val", "test"):
            for k in range(held):
                labels.append(label)
                groups.append(f"c{label}{split}{k}")
                given.append(split)
    n = len(labels)
    return ImageSet(
        name="toy",
        images=torch.zeros(n, 1, 1, 1, dtype=torch.uint8),
        labels=torch.tensor(labels),
        item_ids=[f"i{k}" for k in range(n)],
        groups=groups,
        class_names=CLASSES[: len(train)],
        fingerprint="toy",
        given_splits=tuple(given),
    )


def _train_counts(imageset: ImageSet, split: Split) -> list[int]:
    return imageset.class_counts(split.train).tolist()


def test_the_profile_is_cao_et_al_s_to_the_image() -> None:
    # n_i = floor(100 * 10^(-i/4)): 100, 56.23, 31.62, 17.78, 10.0
    assert profile(100, 5, 10) == [100, 56, 31, 17, 10]
    # Cao et al.'s CIFAR-10-LT at R = 100, and the published training-set sizes of
    # CIFAR-10-LT (R = 10, 50, 100) and CIFAR-100-LT (R = 10, 50, 100).
    assert profile(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    sizes = {(r, c): sum(profile(50000 // c, c, r)) for r in (10, 50, 100) for c in (10, 100)}
    assert sizes == {
        (10, 10): 20431,
        (50, 10): 13996,
        (100, 10): 12406,
        (10, 100): 19573,
        (50, 100): 12608,
        (100, 100): 10847,
    }
    assert profile(100, 5, 1e6)[-1] == 1  # the rarest class keeps at least one image


def test_counts_are_exact_by_training_frequency_and_val_test_are_untouched() -> None:
    imageset = _imageset()
    plain = make_split(imageset, 0.15, 0.15, data_seed=0)
    split = make_split(imageset, 0.15, 0.15, data_seed=0, longtail_ratio=10)
    assert _train_counts(imageset, plain) == list(TRAIN)
    # by frequency b (100), d (80), e (60), a (40), c (20) get 100, 56, 31, 17, 10
    assert _train_counts(imageset, split) == [17, 100, 10, 56, 31]
    assert split.longtail is not None and split.longtail.applied
    assert split.longtail.achieved == 10.0 and split.longtail.natural == 5.0
    assert set(split.train) <= set(plain.train)
    assert np.array_equal(split.val, plain.val) and np.array_equal(split.test, plain.test)


def test_drawn_val_and_test_are_those_drawn_without_the_protocol() -> None:
    imageset = dataclasses.replace(_imageset(), given_splits=())
    plain = make_split(imageset, 0.2, 0.3, data_seed=4)
    split = make_split(imageset, 0.2, 0.3, data_seed=4, longtail_ratio=50)
    assert np.array_equal(split.val, plain.val) and np.array_equal(split.test, plain.test)
    kept = _train_counts(imageset, split)
    available = _train_counts(imageset, plain)
    order = sorted(range(5), key=lambda c: -available[c])
    assert [kept[c] for c in order] == profile(max(available), 5, 50)


def test_the_data_seed_draws_the_subset() -> None:
    imageset = _imageset()
    first, again, other = (
        make_split(imageset, 0.15, 0.15, seed, longtail_ratio=10) for seed in (1, 1, 2)
    )
    assert np.array_equal(first.train, again.train) and first.digest == again.digest
    assert not np.array_equal(first.train, other.train) and first.digest != other.digest
    assert _train_counts(imageset, first) == _train_counts(imageset, other)


def test_whole_groups_are_kept_at_the_nearest_whole_group_count() -> None:
    imageset = _imageset(train=(120, 90, 60), group_size=3)
    split = make_split(imageset, 0.15, 0.15, data_seed=0, longtail_ratio=10)
    # targets 120, floor(120 / sqrt(10)) = 37, 12: in groups of three, 120, 36, 12
    assert _train_counts(imageset, split) == [120, 36, 12]
    kept = set(split.train.tolist())
    for group in set(imageset.groups):
        members = {k for k, g in enumerate(imageset.groups) if g == group}
        assert members <= kept or not members & kept  # all of a group, or none


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ((5, 5, 5, 1, 1, 1, 1), 17),  # 5 + 5 + 5 + 1 + 1 in every order
        ((5, 5, 5, 5), 15),  # 15 and 20: the nearer
        ((4, 4, 4, 4, 4), 16),  # 16 and 20: the nearer
        ((6, 6, 6, 6), 18),  # 18 is one off, 12 five
        ((20, 20, 19), 19),  # every group above the target: the nearest one
    ],
)
def test_groups_of_mixed_sizes_come_nearest_the_target(
    sizes: tuple[int, ...], expected: int
) -> None:
    base = _imageset(train=(60,))  # class a: 60 training images, ungrouped
    labels = base.labels.tolist() + [1] * (sum(sizes) + 2)
    groups = [*base.groups, *(f"b{g}" for g, n in enumerate(sizes) for _ in range(n)), "bv", "bt"]
    given = (*base.given_splits, *("train",) * sum(sizes), "val", "test")
    imageset = dataclasses.replace(
        base,
        images=torch.zeros(len(labels), 1, 1, 1, dtype=torch.uint8),
        labels=torch.tensor(labels),
        item_ids=[f"i{k}" for k in range(len(labels))],
        groups=groups,
        class_names=("a", "b"),
        given_splits=given,
    )
    for seed in range(4):  # target floor(60 / 3.5) = 17 of class b
        split = make_split(imageset, 0.15, 0.15, seed, longtail_ratio=3.5)
        assert _train_counts(imageset, split) == [60, expected]


def test_a_target_above_what_a_class_has_is_capped_and_said() -> None:
    imageset = _imageset(train=(100, 20, 19))
    split = make_split(imageset, 0.15, 0.15, data_seed=0, longtail_ratio=6)
    # natural ratio 100/19 = 5.26 < 6; targets 100, floor(100/sqrt(6)) = 40, floor(100/6) = 16
    assert split.longtail is not None and split.longtail.targets == (100, 40, 16)
    assert _train_counts(imageset, split) == [100, 20, 16]
    assert split.longtail.capped == [1]
    note = split.longtail.note("toy, data seed 0", CLASSES)
    assert "capped at what they have: b (target 40, has 20)" in note


@pytest.mark.parametrize("ratio", [5.0, 2.0, 1.0])
def test_a_ratio_at_or_below_the_natural_one_keeps_the_data_and_says_so(ratio: float) -> None:
    imageset = _imageset()  # natural ratio 100 / 20 = 5
    plain = make_split(imageset, 0.15, 0.15, data_seed=0)
    split = make_split(imageset, 0.15, 0.15, data_seed=0, longtail_ratio=ratio)
    assert np.array_equal(split.train, plain.train)
    assert split.longtail is not None and not split.longtail.applied
    assert "at or below the training set's own (5.00)" in split.longtail.note("toy", CLASSES)
    assert split.digest != plain.digest  # the ratio asked is part of the split's identity


def test_a_ratio_below_one_is_refused() -> None:
    with pytest.raises(BenchError, match=r"ratio = 0\.5 is out of range"):
        make_split(_imageset(), 0.15, 0.15, data_seed=0, longtail_ratio=0.5)


@pytest.mark.parametrize("value", ["0.5", "-3", "nan", "x"])
def test_imbalance_below_one_is_a_one_line_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["run"], ["sweep", "--method", "ce"], ["data", "info", "synthetic"]):
        assert main([*command, "--imbalance", value]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "argument --imbalance" in err, err


def test_the_manifest_records_the_subset(tmp_path: Path) -> None:
    imageset = _imageset()
    split = make_split(imageset, 0.15, 0.15, data_seed=0, longtail_ratio=10)
    manifest = json.loads(write_manifest(split, imageset, tmp_path).read_text())
    assert manifest["hash"] == split.digest
    assert manifest["counts"]["train"] == [17, 100, 10, 56, 31]
    assert manifest["longtail"]["ratio"] == 10.0 and manifest["longtail"]["applied"]
    assert manifest["longtail"]["kept"] == [17, 100, 10, 56, 31]
    assert manifest["longtail"]["targets"] == [17, 100, 10, 56, 31]
    assert manifest["longtail"]["available"] == list(TRAIN)
    assert manifest["items"]["train"] == [imageset.item_ids[i] for i in split.train]
    plain = make_split(imageset, 0.15, 0.15, data_seed=0)
    assert "longtail" not in json.loads(write_manifest(plain, imageset, tmp_path).read_text())


def test_the_ratio_changes_the_run_ids_and_settings_ids_and_nothing_else(
    tiny_project: Path, tmp_path: Path
) -> None:
    spec, methods = get_spec("tiny"), MethodRegistry().expand("ce,ce+crt")
    options = RunOptions("tiny", seeds=(0,), results_dir=tmp_path, progress=False)
    plain = plan(options, spec, methods, torch.device("cpu"))
    again = plan(options, Conditions().resolve_spec(spec), methods, torch.device("cpu"))
    assert [r.run_id for r in again] == [r.run_id for r in plain]
    longtailed = plan(
        options, Conditions(imbalance=20).resolve_spec(spec), methods, torch.device("cpu")
    )
    assert not {r.run_id for r in longtailed} & {r.run_id for r in plain}
    assert not {r.settings_id for r in longtailed} & {r.settings_id for r in plain}
    assert longtailed[0].config["dataset"]["longtail_ratio"] == 20.0
    assert "longtail_ratio" not in plain[0].config["dataset"]
    trained = longtailed[0].experiment.split
    assert np.array_equal(trained.val, plain[0].experiment.split.val)
    assert len(trained.train) < len(plain[0].experiment.split.train)


def test_imbalance_on_the_command_line_wins_over_the_spec(tiny_project: Path) -> None:
    spec_file = tiny_project / "datasets" / "tiny.toml"
    spec_file.write_text(spec_file.read_text() + "\n[longtail]\nratio = 50\n")
    spec = get_spec("tiny")
    assert spec.longtail_ratio == 50.0
    assert Conditions().resolve_spec(spec).longtail_ratio == 50.0
    assert Conditions(imbalance=20).resolve_spec(spec).longtail_ratio == 20.0
    imageset = load_images(spec, 16)
    split = Conditions(imbalance=20).resolve_spec(spec).split(imageset, 0)
    assert split.longtail is not None and split.longtail.ratio == 20.0


@pytest.mark.slow
def test_imbalance_reaches_the_split_of_a_run(
    tiny_project: Path, tmp_path: Path, one_thread: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_tiny(tmp_path, "ce", "--imbalance", "20", "--epochs", "1", "--no-report") == 0
    said = capsys.readouterr().out
    assert "tiny, data seed 0: training classes subsampled to imbalance ratio 20" in said
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("tiny/runs/*/run.json")]
    assert record["config"]["dataset"]["longtail_ratio"] == 20.0
    manifest = json.loads(Path(record["split_manifest"]).read_text())
    assert manifest["hash"] == record["config"]["split"]["hash"]
    available, kept = manifest["longtail"]["available"], manifest["counts"]["train"]
    assert kept == manifest["longtail"]["kept"]
    by_frequency = sorted(range(len(kept)), key=lambda c: -available[c])
    targets = profile(max(available), len(kept), 20)  # capped where a class has fewer
    expected = [min(t, available[c]) for c, t in zip(by_frequency, targets, strict=True)]
    assert [kept[c] for c in by_frequency] == expected
    # Report, status and compare show the runs made at the ratio they are given.
    place = ["--dataset", "tiny", "--results-dir", str(tmp_path), "--epochs", "1"]
    capsys.readouterr()
    assert main(["report", *place, "--imbalance", "20"]) == 0
    assert list(pd.read_csv(tmp_path / "tiny" / "report" / "main.csv")["method"]) == ["ce"]
    assert main(["report", *place]) == 2  # the spec's own ratio: not these runs
    assert "were made at other settings" in capsys.readouterr().err
    assert main(["status", *place, "--finalize", "--imbalance", "20"]) == 0
    capsys.readouterr()
    assert list(pd.read_csv(tmp_path / "tiny" / "summary.csv")["method"]) == ["ce"]
    compare = ["compare", "--datasets", "tiny", "--results-dir", str(tmp_path), "--epochs", "1"]
    assert main([*compare, "--imbalance", "20"]) == 2  # found, but one method is too few
    assert "1 method(s) were run on every dataset; compare needs 2" in capsys.readouterr().err
    assert main(compare) == 2
    said = capsys.readouterr().err
    assert "tiny: no finished runs at the current settings" in said
    assert "its 1 finished run(s) were made at other settings" in said and "--imbalance" in said


def _listing(root: Path) -> Path:
    """A CSV dataset with the training counts of `TRAIN` and three val and test images per
    class (empty image files: `bench data info` decodes none)."""
    rows = ["path,label,group,split"]
    for label, count in zip(CLASSES, TRAIN, strict=True):
        for split, n in (("train", count), ("val", 3), ("test", 3)):
            for k in range(n):
                name = f"{label}-{split}-{k}.png"
                (root / name).touch()
                rows.append(f"{name},{label},,{split}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def test_data_info_shows_the_long_tailed_counts_without_decoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = _listing(tmp_path)
    assert main(["data", "info", f"csv:{listing}", "--data-seed", "3", "--imbalance", "10"]) == 0
    out = capsys.readouterr().out
    assert "split of data seed 3, images per class:" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:2] == "  "}
    assert rows["b"] == ["100", "100", "3", "3"] and rows["c"] == ["20", "10", "3", "3"]
    assert "training ratio n_max/n_min: 10.00" in out
    assert "achieved ratio 10.00" in out
    assert main(["data", "info", f"csv:{listing}", "--data-seed", "3", "--imbalance", "4"]) == 0
    assert "kept as they are" in capsys.readouterr().out
    assert main(["data", "info", f"csv:{listing}"]) == 0
    assert "split of data seed" not in capsys.readouterr().out  # only when asked


def test_splits_without_the_protocol_are_unchanged() -> None:
    imageset = _imageset()
    for seed in range(3):
        plain = make_split(imageset, 0.15, 0.15, seed)
        none = make_split(imageset, 0.15, 0.15, seed, longtail_ratio=None)
        assert plain.digest == none.digest and plain.longtail is None
        assert sum(len(plain.indices(n)) for n in SPLITS) == len(imageset.labels)
