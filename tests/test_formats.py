"""Every on-disk format read from fixtures the tests write: ISIC 2018, MedMNIST npz, image
folders (SD-198 and chest X-ray layouts), CSV listings; bad input named by file and row."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_images, run_tiny
from PIL import Image

from bench.cli.main import main
from bench.core.errors import BenchError
from bench.data.resize import square_resize
from bench.data.specs import get_spec
from bench.data.split import SPLITS, make_split, write_manifest
from bench.experiment.experiment import dataset_block

ISIC_COLUMNS = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")


def _image(path: Path, shade: int, mode: str = "RGB", size: tuple[int, int] = (24, 18)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = shade if mode == "L" else (shade, 255 - shade, 90)
    Image.new(mode, size, colour).save(path)


def _isic(root: Path, official: bool = False) -> Path:
    """Three lesions of two images per class in training; one image per class in each official
    part when asked."""
    parts = {"Training": 6, **({"Validation": 1, "Test": 1} if official else {})}
    groupings = ["image,lesion_id,diagnosis_confirm_type\n"]
    for part, per_class in parts.items():
        rows = ["image," + ",".join(ISIC_COLUMNS) + "\n"]
        for c, _ in enumerate(ISIC_COLUMNS):
            for k in range(per_class):
                image = f"ISIC_{part[:2]}{c}{k}"
                onehot = ["1.0" if j == c else "0.0" for j in range(len(ISIC_COLUMNS))]
                rows.append(f"{image},{','.join(onehot)}\n")
                _image(root / f"ISIC2018_Task3_{part}_Input" / f"{image}.jpg", 30 * c + k)
                if part == "Training":
                    groupings.append(f"{image},IL_{c}{k // 2},histopathology\n")
        truth = root / f"ISIC2018_Task3_{part}_GroundTruth"
        truth.mkdir(parents=True)
        (truth / f"ISIC2018_Task3_{part}_GroundTruth.csv").write_text("".join(rows))
    (root / "ISIC2018_Task3_Training_LesionGroupings.csv").write_text("".join(groupings))
    return root


def test_isic2018_layout_normalises_classes_and_groups_by_lesion(tmp_path: Path) -> None:
    imageset = load_images(get_spec("skin"), 16, _isic(tmp_path / "isic"))
    assert imageset.images.shape == (42, 3, 16, 16)
    assert imageset.class_counts().tolist() == [6] * 7  # every spec class matched, any case
    assert imageset.class_names[imageset.labels[0]] == "mel"  # MEL column -> spec's "mel"
    assert set(imageset.groups) == {f"IL_{c}{k}" for c in range(7) for k in range(3)}
    assert imageset.given_splits == ()
    split = make_split(imageset, 0.15, 0.15, 0)
    lesions = [{imageset.groups[i] for i in split.indices(name)} for name in SPLITS]
    assert not (lesions[0] & lesions[1] or lesions[0] & lesions[2] or lesions[1] & lesions[2])


def test_isic2018_official_parts_become_val_and_test(tmp_path: Path) -> None:
    imageset = load_images(get_spec("skin"), 16, _isic(tmp_path / "isic", official=True))
    split = make_split(imageset, 0.15, 0.15, data_seed=4)
    ids = {name: {imageset.item_ids[i] for i in split.indices(name)} for name in SPLITS}
    assert ids["val"] == {f"ISIC_Va{c}0" for c in range(7)}
    assert ids["test"] == {f"ISIC_Te{c}0" for c in range(7)}
    assert len(ids["train"]) == 42
    assert make_split(imageset, 0.15, 0.15, data_seed=5).digest == split.digest


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("ISIC_X,1.0,1.0,0,0,0,0,0", r"line 44: image 'ISIC_X' must have exactly one class"),
        ("ISIC_X,0,0,0,0,0,0,0", r"line 44: image 'ISIC_X' must have exactly one class"),
    ],
)
def test_isic2018_bad_ground_truth_row(tmp_path: Path, row: str, message: str) -> None:
    root = _isic(tmp_path / "isic")
    truth = root / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv"
    truth.write_text(truth.read_text() + row + "\n")
    with pytest.raises(BenchError, match=message):
        load_images(get_spec("skin"), 16, root)


def test_isic2018_wrong_columns(tmp_path: Path) -> None:
    root = _isic(tmp_path / "isic")
    truth = root / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv"
    truth.write_text("image,MEL,NEVUS\nISIC_1,1,0\n")
    with pytest.raises(BenchError, match=r"GroundTruth\.csv: columns must be 'image' and one per"):
        load_images(get_spec("skin"), 16, root)


def _npz(path: Path, size: int, channels: int, n_classes: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", 3 * n_classes), ("val", n_classes), ("test", 2 * n_classes)):
        shape = (n, size, size) + ((channels,) if channels == 3 else ())
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % n_classes).reshape(-1, 1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def test_dermamnist_npz_keeps_its_split_and_picks_the_size(tmp_path: Path) -> None:
    root = tmp_path / "derma"
    small = _npz(root / "dermamnist.npz", 28, 3, 7)
    _npz(root / "dermamnist_64.npz", 64, 3, 7, seed=1)
    at_28 = load_images(get_spec("skin7"), 28, root)
    assert torch.equal(at_28.images[0], torch.from_numpy(small["train_images"][0]).permute(2, 0, 1))
    # Index 0 is actinic keratosis (akiec), 5 melanocytic nevi (nv): MedMNIST's label table.
    assert at_28.class_names[at_28.labels[0]] == "akiec"
    assert at_28.class_names[at_28.labels[5]] == "nv"
    split = make_split(at_28, 0.15, 0.15, data_seed=0)
    assert [len(split.indices(s)) for s in SPLITS] == [21, 7, 14]
    assert [at_28.item_ids[i] for i in split.val] == [f"val-{i:05d}" for i in range(7)]
    at_48 = load_images(get_spec("skin7"), 48, root)  # from the 64 px file, downscaled
    large = torch.from_numpy(_npz(tmp_path / "again.npz", 64, 3, 7, seed=1)["train_images"][:1])
    assert torch.equal(at_48.images[:1], square_resize(large.permute(0, 3, 1, 2), 48))
    assert at_48.provenance["format"] == "medmnist"


def test_npz_label_out_of_range_is_named(tmp_path: Path) -> None:
    arrays = _npz(tmp_path / "derma" / "dermamnist.npz", 28, 3, 7)
    arrays["test_labels"][3] = 9
    np.savez(tmp_path / "derma" / "dermamnist.npz", **arrays)
    with pytest.raises(BenchError, match=r"dermamnist\.npz: test_labels\[3\] = 9 is not a class"):
        load_images(get_spec("skin"), 28, tmp_path / "derma")


def test_npz_with_wrong_shapes_or_mismatched_sizes(tmp_path: Path) -> None:
    arrays = _npz(tmp_path / "derma" / "dermamnist.npz", 28, 3, 7)
    _npz(tmp_path / "derma" / "dermamnist_64.npz", 64, 3, 7)
    with pytest.raises(BenchError, match=r"dermamnist_64\.npz: its train labels differ"):
        bad_labels = _npz(tmp_path / "derma" / "dermamnist_64.npz", 64, 3, 7)
        bad_labels["train_labels"] = bad_labels["train_labels"][::-1].copy()
        np.savez(tmp_path / "derma" / "dermamnist_64.npz", **bad_labels)
        load_images(get_spec("skin"), 64, tmp_path / "derma")
    arrays["val_images"] = arrays["val_images"][..., :2]
    np.savez(tmp_path / "derma" / "dermamnist.npz", **arrays)
    with pytest.raises(BenchError, match=r"val_images must be uint8 N×H×W or N×H×W×3"):
        load_images(get_spec("skin"), 28, tmp_path / "derma")


def test_pneumoniamnist_grayscale_is_replicated_to_three_channels(tmp_path: Path) -> None:
    arrays = _npz(tmp_path / "chest" / "pneumoniamnist.npz", 28, 1, 2)
    imageset = load_images(get_spec("chest"), 28, tmp_path / "chest")
    assert imageset.images.shape == (12, 3, 28, 28)
    first = torch.from_numpy(arrays["train_images"][0])
    assert all(torch.equal(imageset.images[0, c], first) for c in range(3))
    assert imageset.class_names == ("normal", "pneumonia")


def _sd198(root: Path, classes: tuple[str, ...] = ("Acne_Vulgaris", "Eczema", "Tinea_Corporis")):
    for c, name in enumerate(classes):
        for k in range(4 + 2 * c):
            _image(root / name / f"{name.lower()}_{k}.jpg", 20 * k + c)
    (root / "README.txt").write_text("not an image folder")
    return root


def test_skin198_classes_come_from_folder_names(tmp_path: Path) -> None:
    imageset = load_images(get_spec("skin198"), 16, _sd198(tmp_path / "sd198"))
    assert imageset.class_names == ("Acne_Vulgaris", "Eczema", "Tinea_Corporis")
    assert imageset.class_counts().tolist() == [4, 6, 8]
    assert imageset.item_ids[0] == "Acne_Vulgaris/acne_vulgaris_0.jpg"


def test_imagefolder_path_is_a_dataset_and_found_by_parent(tmp_path: Path) -> None:
    _sd198(tmp_path / "data" / "sd198")
    spec = get_spec(f"imagefolder:{tmp_path / 'data' / 'sd198'}")
    assert re.fullmatch(r"imagefolder-sd198-[0-9a-f]{8}", spec.name)
    # Another folder of the same name elsewhere gets its own results folder.
    (tmp_path / "elsewhere" / "sd198").mkdir(parents=True)
    other = get_spec(f"imagefolder:{tmp_path / 'elsewhere' / 'sd198'}")
    assert other.name != spec.name and other.name.startswith("imagefolder-sd198-")
    assert len(load_images(spec, 8).labels) == 18
    # A named spec searches `BENCH_DATA_ROOT/<params.folder>` before the root itself.
    assert len(load_images(get_spec("skin198"), 8, tmp_path / "data").labels) == 18


def _chest_xray(root: Path) -> Path:
    """Kermany's layout: train/val/test, upper-case class folders, person<N>_ file names."""
    for split, patients in (("train", range(0, 6)), ("val", range(6, 8)), ("test", range(8, 11))):
        for p in patients:
            _image(root / split / "NORMAL" / f"IM-{p:04d}-0001.jpeg", 5 * p, mode="L")
            for k in range(2):
                name = f"person{p}_bacteria_{k}.jpeg"
                _image(root / split / "PNEUMONIA" / name, 7 * p + k, mode="L")
    return root


def test_chest_imagefolder_splits_classes_patients_and_grayscale(tmp_path: Path) -> None:
    imageset = load_images(get_spec("chest"), 16, _chest_xray(tmp_path / "chest_xray"))
    assert imageset.class_names == ("normal", "pneumonia")  # NORMAL/PNEUMONIA matched
    assert imageset.class_counts().tolist() == [11, 22]
    assert torch.equal(imageset.images[:, 0], imageset.images[:, 2])  # gray in all channels
    index = imageset.item_ids.index("train/PNEUMONIA/person3_bacteria_1.jpeg")
    assert imageset.groups[index] == "person3"
    # The spec keeps Kermany's test set and redraws val, whole patients, from train + val.
    test = [i for i, item in enumerate(imageset.item_ids) if item.startswith("test/")]
    splits = [get_spec("chest").split(imageset, seed) for seed in range(3)]
    assert len({split.digest for split in splits}) == 3
    for split in splits:
        assert [len(split.indices(s)) for s in SPLITS] == [21, 3, 9]
        assert split.test.tolist() == test
        val_patients = {imageset.groups[i] for i in split.val}
        assert not val_patients & {imageset.groups[i] for i in split.train}
    # Under the default keep, the source's val is used as given.
    assert make_split(imageset, 0.15, 0.15, 0).val.size == 6
    # Runs drawn this way are told apart from runs on the source's val (other settings), while
    # specs at the default keep the run ids they had.
    assert dataset_block(get_spec("chest"))["kept_splits"] == ["test"]
    assert "kept_splits" not in dataset_block(get_spec("skin"))


def test_patient_in_two_given_splits_is_a_leak(tmp_path: Path) -> None:
    root = _chest_xray(tmp_path / "chest_xray")
    _image(root / "test" / "PNEUMONIA" / "person1_virus_9.jpeg", 3, mode="L")
    with pytest.raises(BenchError, match=r"group 'person1' appears in splits test, train"):
        load_images(get_spec("chest"), 16, root)


def _listing(root: Path, rows: list[str], header: str = "path,label,group,split") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return root / "labels.csv"


def _csv_rows(root: Path) -> list[str]:
    rows = []
    for c, label in enumerate(("benign", "malignant")):
        for k in range(8):
            _image(root / "img" / f"{label}{k}.png", 30 * k + c)
            rows.append(f"img/{label}{k}.png,{label},patient{c}{k // 2},")
    return rows


def test_csv_listing_with_groups_and_a_given_test_split(tmp_path: Path) -> None:
    rows = _csv_rows(tmp_path / "d")
    rows = [r + ("test" if r.split(",")[2].endswith("3") else "") for r in rows]
    spec = get_spec(f"csv:{_listing(tmp_path / 'd', rows)}")
    imageset = load_images(spec, 8)
    assert imageset.class_names == ("benign", "malignant") and len(imageset.labels) == 16
    split = make_split(imageset, 0.25, 0.25, 0)
    test_ids = {imageset.item_ids[i] for i in split.test}
    assert test_ids == {f"img/{n}{k}.png" for n in ("benign", "malignant") for k in (6, 7)}
    patients = [{imageset.groups[i] for i in split.indices(s)} for s in SPLITS]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: [*rows, rows[0]], r"line 18: duplicate image id 'img/benign0\.png'"),
        (lambda rows: [*rows, "../outside.png,benign,,"], r"line 18: path '\.\./outside\.png'"),
        (lambda rows: [*rows, "img/gone.png,benign,,"], r"line 18: image .*gone\.png is listed"),
        (lambda rows: [*rows, "img/new.png,benign,,later"], r"line 18: split 'later'"),
    ],
)
def test_csv_bad_rows_name_file_and_line(tmp_path: Path, edit, message: str) -> None:
    listing = _listing(tmp_path / "d", edit(_csv_rows(tmp_path / "d")))
    with pytest.raises(BenchError, match=message) as error:
        load_images(get_spec(f"csv:{listing}"), 8)
    assert str(listing) in str(error.value)


def test_unassigned_rows_follow_their_group_into_its_given_split(tmp_path: Path) -> None:
    rows = _csv_rows(tmp_path / "d")  # patient<c><k // 2>: two images per patient
    rows = [r + ("test" if r.startswith(("img/benign0", "img/malignant0")) else "") for r in rows]
    imageset = load_images(get_spec(f"csv:{_listing(tmp_path / 'd', rows)}"), 8)
    for data_seed in range(5):
        split = make_split(imageset, 0.25, 0.25, data_seed)
        test_ids = {imageset.item_ids[i] for i in split.test}
        assert {"img/benign1.png", "img/malignant1.png"} <= test_ids  # their patient's split


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,label\nimg/a.png,benign,extra\n", r"labels\.csv: not a readable CSV file"),
        ("", r"labels\.csv: not a readable CSV file"),
    ],
)
def test_malformed_csv_is_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(BenchError, match=message):
        load_images(get_spec(f"csv:{tmp_path / 'labels.csv'}"), 8)


def test_isic2018_conflicting_lesion_groupings(tmp_path: Path) -> None:
    root = _isic(tmp_path / "isic")
    groupings = root / "ISIC2018_Task3_Training_LesionGroupings.csv"
    groupings.write_text(groupings.read_text() + "ISIC_Tr00,IL_99,histopathology\n")
    with pytest.raises(BenchError, match=r"line 44: image 'ISIC_Tr00' is given two lesion ids"):
        load_images(get_spec("skin"), 16, root)


def test_csv_with_wrong_columns(tmp_path: Path) -> None:
    listing = _listing(tmp_path / "d", ["a.png,benign"], header="file,diagnosis")
    with pytest.raises(BenchError, match=r"labels\.csv: columns must be path, label.*missing"):
        load_images(get_spec(f"csv:{listing}"), 8)


def test_named_csv_spec_rejects_labels_outside_its_classes(
    tiny_project: Path, tmp_path: Path
) -> None:
    (tiny_project / "datasets" / "lesions.toml").write_text(
        'description = "a CSV dataset"\nformats = ["csv"]\nclasses = ["benign", "malignant"]\n'
    )
    rows = [*_csv_rows(tmp_path / "lesions"), "img/new.png,Unsure,,"]
    _listing(tmp_path / "lesions", rows)
    with pytest.raises(BenchError, match=r"line 18: label 'Unsure' is not one of benign, mal"):
        load_images(get_spec("lesions"), 8, tmp_path)


def test_class_with_too_few_groups_for_the_splits(tmp_path: Path) -> None:
    rows = _csv_rows(tmp_path / "d")
    _image(tmp_path / "d" / "img" / "rare.png", 1)
    spec = get_spec(f"csv:{_listing(tmp_path / 'd', [*rows, 'img/rare.png,rare,,'])}")
    with pytest.raises(BenchError, match=r"class 'rare' has 1 group\(s\).*each split needs one"):
        make_split(load_images(spec, 8), 0.2, 0.2, 0)


@pytest.mark.slow
def test_unreadable_image_stops_or_is_skipped_and_recorded(
    tiny_project: Path, tmp_path: Path
) -> None:
    root = tmp_path / "d"
    rows = [r.replace("patient", "p") for r in _csv_rows(root)]
    listing = _listing(root, rows)
    (root / "img" / "benign5.png").write_bytes((root / "img" / "benign5.png").read_bytes()[:40])
    spec = get_spec(f"csv:{listing}")
    with pytest.raises(BenchError, match=r"benign5\.png \(listed at .*line 7\): cannot decode"):
        load_images(spec, 8)
    kept = load_images(spec, 8, skip_bad=True)
    assert len(kept.labels) == 15 and "img/benign5.png" not in kept.item_ids
    assert kept.provenance["skipped"][0]["origin"].endswith("labels.csv, line 7")

    results = tmp_path / "results"
    argv = ["--dataset", f"csv:{listing}", "--skip-bad", "--min-steps", "0"]
    assert run_tiny(results, "ce", *argv) == 0
    (record,) = [json.loads(p.read_text()) for p in results.glob("*/runs/*/run.json")]
    assert record["data"]["skipped"][0]["path"].endswith("benign5.png")


def test_split_manifest_reproduces_exactly_from_its_seed(tmp_path: Path) -> None:
    imageset = load_images(get_spec("skin"), 16, _isic(tmp_path / "isic"))
    first = write_manifest(make_split(imageset, 0.15, 0.15, 7), imageset, tmp_path / "a")
    again = write_manifest(make_split(imageset, 0.15, 0.15, 7), imageset, tmp_path / "b")
    other = write_manifest(make_split(imageset, 0.15, 0.15, 8), imageset, tmp_path / "c")
    assert first.read_bytes() == again.read_bytes() and first.name == again.name
    assert json.loads(first.read_text())["items"] != json.loads(other.read_text())["items"]


def test_data_info_reports_search_and_contents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _isic(tmp_path / "data" / "skin", official=True)
    assert main(["data", "info", "skin", "--data-root", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'data' / 'ham10000'}  -" in out
    assert f"{tmp_path / 'data' / 'skin'}  isic2018 <- used" in out
    assert "56 images, 7 classes, 35 groups" in out
    given = "splits given by the source: train 0, val 7, test 7, unassigned 42"
    assert f"{given}; kept as given: val, test" in out
    assert main(["data", "info", "skin198", "--data-root", str(tmp_path / "none")]) == 0
    assert "found: nothing." in capsys.readouterr().out


def test_spec_with_the_old_format_key_or_bad_classes(tiny_project: Path) -> None:
    spec = tiny_project / "datasets" / "old.toml"
    spec.write_text('description = "x"\nformat = "csv"\n')
    with pytest.raises(BenchError, match=r"old\.toml: 'format' is now 'formats'.*\['csv'\]"):
        get_spec("old")
    spec.write_text('description = "x"\nformats = ["csv"]\nclasses = "abc"\n')
    with pytest.raises(BenchError, match=r"old\.toml: 'classes' must be a list of names"):
        get_spec("old")
