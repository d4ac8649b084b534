"""Reading the HAM10000 layout: generated fixtures for every error, and the real folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import SHARED_HAM, load_images
from PIL import Image

from bench.core.errors import BenchError
from bench.data.specs import get_spec
from bench.data.split import SPLITS, make_split

CLASSES = ("nv", "mel", "bkl", "bcc", "akiec", "vasc", "df")
HEADER = "lesion_id,image_id,dx,dx_type,age,sex,localization\n"


def _fixture(
    root: Path, rows: list[tuple[str, str, str]], skip_images: tuple[str, ...] = ()
) -> Path:
    """Write a HAM10000-layout folder: a metadata CSV and one small JPEG per listed image."""
    (root / "HAM10000_images_part_1").mkdir(parents=True)
    (root / "HAM10000_images_part_2").mkdir()
    lines = [HEADER]
    for k, (lesion, image, dx) in enumerate(rows):
        lines.append(f"{lesion},{image},{dx},histo,50.0,male,back\n")
        if image in skip_images:
            continue
        folder = "HAM10000_images_part_1" if k % 2 else "HAM10000_images_part_2"
        Image.new("RGB", (40, 30), (40 * (k % 6), 90, 120)).save(root / folder / f"{image}.jpg")
    (root / "HAM10000_metadata.csv").write_text("".join(lines))
    return root


def _rows() -> list[tuple[str, str, str]]:
    rows = []
    for c, dx in enumerate(CLASSES):
        for lesion in range(3):
            for shot in range(2):
                rows.append((f"HAM_{c}{lesion}", f"ISIC_{c}{lesion}{shot}", dx))
    return rows


def test_reads_layout_labels_groups_and_resizes(tmp_path: Path) -> None:
    root = _fixture(tmp_path / "ham", _rows())
    imageset = load_images(get_spec("skin"), 16, root)
    assert imageset.images.shape == (42, 3, 16, 16) and imageset.images.dtype == torch.uint8
    assert imageset.class_counts().tolist() == [6] * 7
    assert imageset.groups[:2] == ["HAM_00", "HAM_00"]
    assert imageset.provenance["root"] == str(root.resolve())


def test_decoded_images_are_cached_and_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _fixture(tmp_path / "ham", _rows())
    first = load_images(get_spec("skin"), 16, root)
    from bench.data import decode

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(decode, "decode_files", no_decoding)
    second = load_images(get_spec("skin"), 16, root)
    assert torch.equal(first.images, second.images) and first.fingerprint == second.fingerprint


def test_data_root_from_environment_and_parent_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fixture(tmp_path / "data" / "ham10000", _rows())
    monkeypatch.setenv("BENCH_DATA_ROOT", str(tmp_path / "data"))
    assert len(load_images(get_spec("skin7"), 8).labels) == 42


def test_missing_data_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(
        BenchError,
        match=r"no data found in a format of ham10000, isic2018, medmnist\. Looked in:"
        r"(.|\n)*nowhere(.|\n)*HAM10000_metadata\.csv(.|\n)*bench data download skin",
    ):
        load_images(get_spec("skin"), 16, tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda rows: [*rows, rows[0]],
            r"line 44: duplicate image id 'ISIC_000' \(first listed at .*line 2\)",
        ),
        (lambda rows: [*rows, ("HAM_x", "ISIC_x", "melanoma")], r"line 44: label 'melanoma'"),
    ],
)
def test_bad_metadata_names_file_and_line(tmp_path: Path, mutate, message: str) -> None:
    root = _fixture(tmp_path / "ham", mutate(_rows()))
    with pytest.raises(BenchError, match=message) as error:
        load_images(get_spec("skin"), 16, root)
    assert "HAM10000_metadata.csv" in str(error.value)


def test_listed_but_missing_image_is_named(tmp_path: Path) -> None:
    root = _fixture(tmp_path / "ham", _rows(), skip_images=("ISIC_310",))
    with pytest.raises(BenchError, match=r"line 22: image .*ISIC_310\.jpg is listed but not found"):
        load_images(get_spec("skin"), 16, root)


def test_wrong_columns_and_undecodable_image(tmp_path: Path) -> None:
    root = _fixture(tmp_path / "ham", _rows())
    (root / "HAM10000_images_part_2" / "ISIC_000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(
        BenchError, match=r"ISIC_000\.jpg \(listed at .*line 2\): cannot decode image.*--skip-bad"
    ):
        load_images(get_spec("skin"), 16, root)
    (root / "HAM10000_metadata.csv").write_text("image,MEL,NV\nISIC_1,1,0\n")
    with pytest.raises(BenchError, match=r"missing column\(s\) lesion_id, image_id, dx"):
        load_images(get_spec("skin"), 16, root)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_HAM.is_dir(), reason="needs ../shared/data/ham10000")
def test_real_ham10000_split_keeps_each_lesion_on_one_side() -> None:
    imageset = load_images(get_spec("skin"), 8, SHARED_HAM)
    assert imageset.class_counts().tolist() == [6705, 1113, 1099, 514, 327, 142, 115]
    assert len(set(imageset.groups)) == 7470
    for seed in (0, 1):
        split = make_split(imageset, 0.15, 0.15, seed)
        lesions = [{imageset.groups[i] for i in split.indices(name)} for name in SPLITS]
        assert not (lesions[0] & lesions[1] or lesions[0] & lesions[2] or lesions[1] & lesions[2])
        assert sum(map(len, lesions)) == 7470
        for name in SPLITS:
            assert (imageset.class_counts(split.indices(name)) > 0).all()
