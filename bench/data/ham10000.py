"""Reader for the HAM10000 layout: `HAM10000_metadata.csv` + `HAM10000_images_part_{1,2}/`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from bench.data.imageset import ImageSet
from bench.data.resize import square_resize
from bench.errors import BenchError
from bench.files import hash_files

METADATA = "HAM10000_metadata.csv"
IMAGE_FOLDERS = ("HAM10000_images_part_1", "HAM10000_images_part_2")
REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx")
# Bump when decoding or resizing changes, so cached tensors are rebuilt.
READER_VERSION = 1

LAYOUT_HELP = (
    "Expected layout (as the Kaggle copy of HAM10000 ships it): "
    f"ROOT/{METADATA} and ROOT/{IMAGE_FOLDERS[0]}/ISIC_*.jpg, ROOT/{IMAGE_FOLDERS[1]}/ISIC_*.jpg. "
    "Point --data-root or BENCH_DATA_ROOT at ROOT."
)


def is_ham10000_root(root: Path) -> bool:
    """Whether `root` holds the HAM10000 metadata file."""
    return (root / METADATA).is_file()


def read_metadata(root: Path, class_names: tuple[str, ...]) -> pd.DataFrame:
    """The metadata table with an added `path` column, validated row by row."""
    csv_path = root / METADATA
    table = pd.read_csv(csv_path, dtype=str)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise BenchError(
            f"{csv_path}: missing column(s) {', '.join(missing)}; found {', '.join(table.columns)}."
        )
    duplicated = table["image_id"][table["image_id"].duplicated()]
    if len(duplicated):
        row = int(duplicated.index[0]) + 2
        raise BenchError(
            f"{csv_path}, line {row}: duplicate image_id {duplicated.iloc[0]!r}; "
            "each image must be listed once."
        )
    unknown = table[~table["dx"].isin(class_names)]
    if len(unknown):
        row = int(unknown.index[0]) + 2
        raise BenchError(
            f"{csv_path}, line {row}: label {unknown['dx'].iloc[0]!r} is not one of "
            f"{', '.join(class_names)}."
        )
    files = {
        p.stem: p
        for folder in IMAGE_FOLDERS
        if (root / folder).is_dir()
        for p in (root / folder).glob("*.jpg")
    }
    absent = table[~table["image_id"].isin(files)]
    if len(absent):
        row = int(absent.index[0]) + 2
        raise BenchError(
            f"{csv_path}, line {row}: image {absent['image_id'].iloc[0]}.jpg is listed "
            f"but not found in {' or '.join(IMAGE_FOLDERS)} ({len(absent)} missing in "
            f"all). {LAYOUT_HELP}"
        )
    table["path"] = table["image_id"].map(files)
    return table


def content_fingerprint(table: pd.DataFrame, root: Path) -> str:
    """Digest of the metadata file and every listed image's bytes."""
    return hash_files([root / METADATA, *table["path"]])


def decode(
    table: pd.DataFrame,
    image_size: int,
    class_names: tuple[str, ...],
    name: str,
    fingerprint: str,
    progress: bool = True,
) -> ImageSet:
    """Decode and resize every listed image into an ImageSet (the slow, cacheable step)."""
    images = torch.empty(len(table), 3, image_size, image_size, dtype=torch.uint8)
    paths = tqdm(
        table["path"], desc=f"decoding {name}", unit="img", leave=False, disable=not progress
    )
    for i, path in enumerate(paths):
        try:
            raw = read_rgb(path, image_size)
        except (OSError, UnidentifiedImageError) as error:
            raise BenchError(
                f"{path}: cannot decode image ({error}). Replace or remove the "
                "file and its metadata row."
            ) from error
        images[i] = square_resize(raw, image_size)
    index = {c: k for k, c in enumerate(class_names)}
    return ImageSet(
        name=name,
        images=images,
        labels=torch.tensor([index[c] for c in table["dx"]], dtype=torch.int64),
        item_ids=list(table["image_id"]),
        groups=list(table["lesion_id"]),
        class_names=class_names,
        fingerprint=fingerprint,
    )


def read_rgb(path: Path, min_size: int) -> torch.Tensor:
    """Decode an image file to a uint8 3×H×W tensor.

    JPEG decoding is allowed to downscale by powers of two (PIL's draft mode) while both sides
    stay at least `min_size`, which makes full-resolution sources cheap to read.
    """
    with Image.open(path) as image:
        image.draft("RGB", (min_size, min_size))
        array = np.asarray(image.convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1)
