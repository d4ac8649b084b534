"""MedMNIST `.npz` files (DermaMNIST, PneumoniaMNIST, ...), with their own train/val/test split.

Each file holds `{train,val,test}_images` (N×H×W grayscale or N×H×W×3 RGB, uint8) and
`{train,val,test}_labels` (N×1 class indices). Sizes ship as `NAME.npz` (28 px) and
`NAME_{64,128,224}.npz`; the smallest file at least as large as the requested image size is used
(else the largest). Spec parameters (`[params.medmnist]`): `file` (NAME) and `labels` (the
spec's class name of each index, in index order). Items have no lesion or patient ids, so the
file's own splits are used as they are, except those a spec's `[split] keep` leaves out: these
are pooled with train and redrawn per data seed, image by image.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from bench.core.errors import BenchError
from bench.core.files import hash_files
from bench.data.resize import square_resize
from bench.data.source import Decoded, Reader, Source
from bench.data.table import SPLIT_NAMES, canonical_labels, check_table

SIZES = (28, 64, 128, 224)
SETTINGS = {"file", "labels"}  # the keys of [params.medmnist]


def _settings(params: dict[str, Any]) -> dict[str, Any]:
    settings = params.get("medmnist")
    if not isinstance(settings, dict) or "file" not in settings or set(settings) - SETTINGS:
        raise BenchError(
            "dataset spec: format 'medmnist' needs [params.medmnist] with 'file' (e.g. "
            "'dermamnist') and 'labels' (class name of each index), and no other key; got "
            f"{settings!r}."
        )
    return settings


def files_by_size(root: Path, stem: str) -> dict[int, Path]:
    """The `stem` npz files present in `root`, by image size."""
    names = {size: f"{stem}.npz" if size == 28 else f"{stem}_{size}.npz" for size in SIZES}
    return {size: root / name for size, name in names.items() if (root / name).is_file()}


def choose_file(files: dict[int, Path], image_size: int) -> Path:
    """The smallest file whose images are at least `image_size`, else the largest."""
    large_enough = [size for size in files if size >= image_size]
    return files[min(large_enough) if large_enough else max(files)]


def detect(root: Path, params: dict[str, Any]) -> bool:
    """Whether `root` holds any size of the spec's npz file."""
    return bool(files_by_size(root, _settings(params)["file"]))


def _open(path: Path) -> dict[str, np.ndarray]:
    """Every split's images and labels, checked: uint8 N×H×W or N×H×W×3 images, integer
    labels of shape N or N×1."""
    try:
        with np.load(path) as stored:
            missing = [
                f"{split}_{kind}"
                for split in SPLIT_NAMES
                for kind in ("images", "labels")
                if f"{split}_{kind}" not in stored.files
            ]
            if missing:
                raise BenchError(
                    f"{path}: missing array(s) {', '.join(missing)}; found "
                    f"{', '.join(stored.files)}."
                )
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise BenchError(
            f"{path}: not a readable .npz file ({error}); download it again "
            "(`bench data download`)."
        ) from error
    for split in SPLIT_NAMES:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        rgb = images.ndim == 4 and images.shape[-1] == 3
        if images.dtype != np.uint8 or not (images.ndim == 3 or rgb):
            raise BenchError(
                f"{path}: {split}_images must be uint8 N×H×W or N×H×W×3, got "
                f"{images.dtype} {images.shape}."
            )
        if (
            not np.issubdtype(labels.dtype, np.integer)
            or labels.ndim not in (1, 2)
            or labels.shape[1:] not in ((), (1,))
        ):
            raise BenchError(
                f"{path}: {split}_labels must be integer class indices of shape N or N×1, got "
                f"{labels.dtype} {labels.shape} (multi-label files are not supported)."
            )
        if len(labels) != len(images):
            raise BenchError(f"{path}: {split} has {len(images)} images but {len(labels)} labels.")
    return arrays


def read(root: Path, classes: tuple[str, ...], params: dict[str, Any], name: str) -> Source:
    """The items of every size variant's split, labelled through `labels`; decoding picks the
    file that best fits the requested image size."""
    settings = _settings(params)
    files = files_by_size(root, settings["file"])
    labels_by_index = list(settings.get("labels", classes))
    reference = files[min(files)]
    arrays = _open(reference)
    rows = []
    for split in SPLIT_NAMES:
        indices = np.asarray(arrays[f"{split}_labels"]).reshape(-1)
        for i, index in enumerate(indices.tolist()):
            if not 0 <= index < len(labels_by_index):
                raise BenchError(
                    f"{reference}: {split}_labels[{i}] = {index} is not a class index "
                    f"0..{len(labels_by_index) - 1}."
                )
            item = f"{split}-{i:05d}"
            rows.append(
                (item, labels_by_index[index], item, split, f"{reference}, {split} item {i}")
            )
    table = pd.DataFrame(rows, columns=["item_id", "label", "group", "split", "origin"])
    table["label"] = canonical_labels(table["label"], classes)
    check_table(table, classes)

    def decode(image_size: int, skip_bad: bool, progress: bool) -> Decoded:
        path = choose_file(files, image_size)
        source = _open(path)
        for split in SPLIT_NAMES:
            if not np.array_equal(
                source[f"{split}_labels"].reshape(-1), arrays[f"{split}_labels"].reshape(-1)
            ):
                raise BenchError(
                    f"{path}: its {split} labels differ from those of {reference}; the size "
                    "variants must hold the same images. Download them again."
                )
        parts = []
        for split in tqdm(
            SPLIT_NAMES, desc=f"resizing {path.name}", leave=False, disable=not progress
        ):
            images = torch.from_numpy(np.asarray(source[f"{split}_images"]))
            if images.ndim == 3:  # grayscale: replicate to the 3 channels every backbone takes
                images = images.unsqueeze(-1).expand(-1, -1, -1, 3)
            parts.append(square_resize(images.permute(0, 3, 1, 2).contiguous(), image_size))
        return Decoded(torch.cat(parts), np.ones(len(table), dtype=bool))

    return Source(
        format="medmnist",
        root=root,
        table=table,
        class_names=classes,
        content=hash_files(sorted(files.values())),
        decode=decode,
        notes={"files": {size: str(path) for size, path in sorted(files.items())}},
    )


READER = Reader(detect, read)
