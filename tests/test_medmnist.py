"""MedMNIST data: the named sets `blood`, `organa`, `retina` (and `-lt` variants) read from npz
files the tests write in `../shared/data`'s layout, each spec's split policy, and `medmnist:FILE`
as ad-hoc data with one-line errors for a file in the wrong layout."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, load_images

from bench.cli.main import main
from bench.core.errors import BenchError
from bench.core.layout import cache_root
from bench.data.loading import data_home, locate, search
from bench.data.specs import get_spec, results_spec
from bench.data.split import SPLITS

SHARED = REPO.parent / "shared" / "data"
# Per spec: the MedMNIST file, classes, the splits kept as given, the long-tail ratio and the
# MD5 MedMNIST v2 publishes for the 28 px file (each shared folder's README gives the same).
NAMED = {
    "chest": ("pneumoniamnist", 2, ("test",), None, "28209eda62fecd6e6a2d98b1501bb15f"),
    "blood": ("bloodmnist", 8, ("test",), None, "7053d0359d879ad8a5505303e11de1dc"),
    "blood-lt": ("bloodmnist", 8, ("test",), 100.0, "7053d0359d879ad8a5505303e11de1dc"),
    "organa": ("organamnist", 11, ("val", "test"), None, "68e3f8846a6bd62f0c9bf841c0d9eacc"),
    "organa-lt": ("organamnist", 11, ("val", "test"), 100.0, "68e3f8846a6bd62f0c9bf841c0d9eacc"),
    "retina": ("retinamnist", 5, ("test",), None, "bd4c0672f1bba3e3a89f0e4e876791e4"),
}
PER_CLASS = {"train": 12, "val": 3, "test": 4}  # images per class and split in the test files


def _write(path: Path, n_classes: int, per_class: dict[str, int] = PER_CLASS, **arrays) -> Path:
    """An npz in MedMNIST's layout: 8×8 RGB images, labels cycling through the classes (N×1
    uint8); `arrays` replaces or adds arrays."""
    rng = np.random.default_rng(n_classes)
    content: dict[str, np.ndarray] = {}
    for split, count in per_class.items():
        n = count * n_classes
        content[f"{split}_images"] = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
        content[f"{split}_labels"] = (np.arange(n) % n_classes).astype(np.uint8).reshape(-1, 1)
    content.update(arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:  # np.savez would add .npz to a name without it
        np.savez(file, **content)
    return path


def _shared_layout(root: Path) -> Path:
    """A parent folder like `../shared/data`: one folder per MedMNIST file, with a README."""
    for stem, n_classes, *_ in NAMED.values():
        if not (root / stem).exists():
            _write(root / stem / f"{stem}.npz", n_classes)
            (root / stem / "README.md").write_text("a README beside the file")
    return root


@pytest.mark.parametrize("name", NAMED)
def test_named_spec_parses_with_medmnist_classes_and_download(name: str) -> None:
    stem, n_classes, kept, ratio, md5 = NAMED[name]
    spec = get_spec(name)
    settings = spec.params["medmnist"]
    assert settings["file"] == stem
    assert len(spec.classes) == n_classes and tuple(settings["labels"]) == spec.classes
    assert spec.kept_splits == kept and spec.longtail_ratio == ratio
    assert spec.ordinal == (name == "retina")
    (remote,) = spec.downloads[stem]
    assert remote.url == f"https://zenodo.org/records/10519652/files/{stem}.npz?download=1"
    assert (remote.name, remote.algorithm, remote.digest) == (f"{stem}.npz", "md5", md5)
    assert spec.training["image_size"] == 28 and spec.training["backbone"] == "resnet-compact"
    gpu = spec.training_for("gpu")
    assert (gpu["backbone"], gpu["image_size"], gpu["pretrained"]) == ("resnet50", 224, True)


def test_class_names_follow_medmnist_label_tables() -> None:
    blood, organa, retina = (get_spec(n).classes for n in ("blood", "organa", "retina"))
    assert (blood[3], blood[6]) == ("immature granulocytes", "neutrophil")
    assert (organa[0], organa[1], organa[6], organa[10]) == (
        "bladder",
        "femur-left",
        "liver",
        "spleen",
    )
    assert retina == ("0", "1", "2", "3", "4")  # grades, in order: the task is ordinal


@pytest.mark.parametrize("name", NAMED)
def test_every_named_set_is_found_under_a_parent_of_medmnist_folders(
    name: str, tmp_path: Path
) -> None:
    root = _shared_layout(tmp_path / "data")
    stem, n_classes, *_ = NAMED[name]
    spec = get_spec(name)
    result = search(spec, root, cache_root())
    assert result.found == (root, "medmnist")
    source = locate(spec, result)
    assert source.root == root / stem
    assert source.class_names == spec.classes
    assert len(source.table) == sum(PER_CLASS.values()) * n_classes


def test_the_folder_itself_and_a_flat_parent_are_found_too(tmp_path: Path) -> None:
    _write(tmp_path / "flat" / "bloodmnist.npz", 8)
    assert search(get_spec("blood"), tmp_path / "flat", cache_root()).found is not None
    _write(tmp_path / "data" / "bloodmnist" / "bloodmnist.npz", 8)
    inside = tmp_path / "data" / "bloodmnist"
    assert search(get_spec("blood"), inside, cache_root()).found == (inside, "medmnist")
    # For `chest`, a chest_xray/ without images is passed over for PneumoniaMNIST.
    (tmp_path / "data" / "chest_xray" / "NORMAL").mkdir(parents=True)
    _write(tmp_path / "data" / "pneumoniamnist" / "pneumoniamnist.npz", 2)
    found = search(get_spec("chest"), tmp_path / "data", cache_root()).found
    assert found == (tmp_path / "data", "medmnist")


def test_long_tailed_specs_find_the_download_of_their_base(tmp_path: Path) -> None:
    downloaded = data_home(cache_root())  # where `bench data download blood` puts it
    _write(downloaded / "blood" / "bloodmnist.npz", 8)
    _write(downloaded / "organa" / "organamnist.npz", 11)
    for name, base in (("blood-lt", "blood"), ("organa-lt", "organa")):
        assert search(get_spec(name), None, cache_root()).found == (downloaded / base, "medmnist")


def test_organa_keeps_the_three_given_splits_for_every_data_seed(tmp_path: Path) -> None:
    root = _shared_layout(tmp_path / "data")
    imageset = load_images(get_spec("organa"), 8, root)
    given = {
        s: [i for i, item in enumerate(imageset.item_ids) if item.startswith(s)] for s in SPLITS
    }
    splits = [get_spec("organa").split(imageset, seed) for seed in range(3)]
    for split in splits:
        assert {s: split.indices(s).tolist() for s in SPLITS} == given
    assert len({split.digest for split in splits}) == 1


@pytest.mark.parametrize("name", ["blood", "retina"])
def test_blood_and_retina_keep_the_test_set_and_redraw_val_per_data_seed(
    name: str, tmp_path: Path
) -> None:
    root = _shared_layout(tmp_path / "data")
    spec = get_spec(name)
    imageset = load_images(spec, 8, root)
    n_classes = len(spec.classes)
    test = [i for i, item in enumerate(imageset.item_ids) if item.startswith("test-")]
    splits = [spec.split(imageset, seed) for seed in range(3)]
    vals = {tuple(split.val.tolist()) for split in splits}
    assert len(vals) == 3  # distinct val sets, so distinct splits
    pool = (PER_CLASS["train"] + PER_CLASS["val"]) * n_classes
    for split in splits:
        assert split.test.tolist() == test
        assert len(split.train) + len(split.val) == pool
        assert len(split.val) == round(0.15 * pool / n_classes) * n_classes  # 15 % of each class
        assert set(imageset.labels[split.val].tolist()) == set(range(n_classes))


def _ad_hoc(path: Path) -> str:
    return f"medmnist:{path}"


def test_medmnist_file_is_a_dataset_with_index_names_in_index_order(tmp_path: Path) -> None:
    path = _write(tmp_path / "mine" / "scans.npz", 12)
    spec = get_spec(_ad_hoc(path))
    assert re.fullmatch(r"medmnist-scans-[0-9a-f]{8}", spec.name)
    other = get_spec(_ad_hoc(_write(tmp_path / "elsewhere" / "scans.npz", 12)))
    assert other.name != spec.name
    imageset = load_images(spec, 8)
    assert imageset.class_names == tuple(str(i) for i in range(12))  # "10" after "9"
    assert imageset.class_counts().tolist() == [sum(PER_CLASS.values())] * 12
    assert imageset.images.shape == (19 * 12, 3, 8, 8)
    # The file's own splits are kept, as for any source that gives them.
    split = spec.split(imageset, data_seed=3)
    assert [len(split.indices(s)) for s in SPLITS] == [12 * 12, 3 * 12, 4 * 12]
    (tmp_path / spec.name).mkdir()  # its results folder: reported with the built-in settings
    assert results_spec(spec.name, tmp_path) == results_spec(spec.name, tmp_path)
    assert results_spec(spec.name, tmp_path).formats == ("medmnist",)


def test_medmnist_file_names_only_the_classes_present(tmp_path: Path) -> None:
    labels = {s: (np.arange(n * 3) % 3 * 2).reshape(-1, 1) for s, n in PER_CLASS.items()}
    arrays = {f"{s}_labels": v.astype(np.int64) for s, v in labels.items()}
    imageset = load_images(get_spec(_ad_hoc(_write(tmp_path / "gaps.npz", 3, **arrays))), 8)
    assert imageset.class_names == ("0", "2", "4")


def test_data_info_reads_a_medmnist_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "cells.npz", 4)
    assert main(["data", "info", _ad_hoc(path)]) == 0
    out = capsys.readouterr().out
    assert f"found: medmnist at {tmp_path}: 76 images, 4 classes" in out
    assert f"files: {path}" in out


def _case(tmp_path: Path, case: str) -> Path:
    """A file (or folder) wrong in one way."""
    path = tmp_path / "bad.npz"
    n = PER_CLASS["val"] * 3
    if case == "missing":
        _write(path, 3)
        with np.load(path) as stored:
            kept = {k: stored[k] for k in stored.files if k != "val_labels"}
        with path.open("wb") as file:
            np.savez(file, **kept)
    elif case == "float images":
        _write(path, 3, val_images=np.zeros((n, 8, 8, 3), dtype=np.float32))
    elif case == "two channels":
        _write(path, 3, val_images=np.zeros((n, 8, 8, 2), dtype=np.uint8))
    elif case == "multi-label":
        _write(path, 3, val_labels=np.zeros((n, 3), dtype=np.uint8))
    elif case == "count":
        _write(path, 3, val_labels=np.zeros((n - 1, 1), dtype=np.uint8))
    elif case == "negative":
        _write(path, 3, val_labels=-np.ones((n, 1), dtype=np.int64))
    elif case == "text":
        path.write_text("train_images,train_labels\n1,2\n")
    elif case == "npy":
        np.save(path.with_suffix(".npy"), np.zeros(3))
        path.with_suffix(".npy").rename(path)
    elif case == "truncated":
        _write(path, 3)
        path.write_bytes(path.read_bytes()[:300])
    elif case == "folder":
        path.mkdir()
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", r"missing array\(s\) val_labels \(found .*\); a MedMNIST file is a NumPy"),
        ("float images", r"val_images must be uint8 N×H×W or N×H×W×3, got float32"),
        ("two channels", r"val_images must be uint8 N×H×W or N×H×W×3, got uint8 \(9, 8, 8, 2\)"),
        ("multi-label", r"val_labels must be integer class indices .* not supported"),
        ("count", r"val has 9 images but 8 labels"),
        ("negative", r"val_labels\[0\] = -1 is not a class index 0 or more; 9 such label"),
        ("text", r"not an \.npz archive .*; a MedMNIST file is a NumPy \.npz archive"),
        ("npy", r"not an \.npz archive"),
        ("truncated", r"not an \.npz archive .*Download it again"),
        ("folder", r"medmnist:.*bad\.npz: not a file; name an \.npz file"),
        ("nothing", r"medmnist:.*bad\.npz: no such file"),
    ],
)
def test_a_file_in_the_wrong_layout_is_one_line_naming_it(
    case: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _case(tmp_path, case)
    assert main(["data", "info", _ad_hoc(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("bench: error: ")
    assert str(path) in error and re.search(message, error), error


def test_a_label_beyond_the_spec_s_names_is_named(tmp_path: Path) -> None:
    arrays = {"test_labels": np.full((32, 1), 9, dtype=np.uint8)}
    _write(tmp_path / "bloodmnist.npz", 8, **arrays)
    with pytest.raises(
        BenchError, match=r"test_labels\[0\] = 9 is not a class index 0\.\.7 \(the 8"
    ):
        load_images(get_spec("blood"), 8, tmp_path)


def test_data_info_finds_the_named_sets_and_says_which_task_is_ordinal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _shared_layout(tmp_path / "data")
    assert main(["data", "info", "retina", "--data-root", str(root)]) == 0
    assert "task: ordinal grades" in capsys.readouterr().out
    assert main(["data", "info", "blood-lt", "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "ordinal" not in out
    assert f"found: medmnist at {root / 'bloodmnist'}: 152 images, 8 classes" in out


# The shared copies' sizes and per-class counts, as their READMEs give them. Reading the item
# tables (nothing decoded) takes about 0.3 s for the largest, so the test is not marked slow.
SHARED_COUNTS = {
    "chest": (5856, [1583, 4273]),
    "blood": (17092, [1218, 3117, 1551, 2895, 1214, 1420, 3329, 2348]),
    "organa": (58830, [3313, 2407, 2375, 2651, 6595, 6419, 10482, 6699, 6751, 5182, 5956]),
    "retina": (1600, [714, 186, 326, 282, 92]),
}


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("name", SHARED_COUNTS)
def test_the_shared_sets_are_found_with_one_data_root(name: str) -> None:
    spec = get_spec(name)
    source = locate(spec, search(spec, SHARED, cache_root()))
    total, per_class = SHARED_COUNTS[name]
    assert source.root == SHARED / spec.params["medmnist"]["file"]
    assert len(source.table) == total
    assert source.table["label"].value_counts()[list(spec.classes)].tolist() == per_class
