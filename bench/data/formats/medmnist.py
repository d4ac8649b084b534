"""MedMNIST `.npz` files (DermaMNIST, PneumoniaMNIST, BloodMNIST, ...), with their own
train/val/test split.

Each file holds `{train,val,test}_images` (N×H×W grayscale or N×H×W×3 RGB, uint8) and
`{train,val,test}_labels` (N×1 class indices). Sizes ship as `NAME.npz` (28 px) and
`NAME_{64,128,224}.npz`, found in a data root or in its sub-folder `NAME/` (one folder per
file, as `../shared/data` keeps them); the smallest file at least as large as the requested
image size is used (else the largest). Spec parameters (`[params.medmnist]`): `file` (NAME)
and `labels` (the spec's class name of each index, in index order). `medmnist:FILE` reads one
file in this layout, of whatever size it holds; without `labels` a class is named by its
index (`"0"`, `"1"`, ...). Items have no lesion or patient ids, so the file's own splits are
used as they are, except those a spec's `[split] keep` leaves out: these are pooled with
train and redrawn per data seed, image by image.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from bench.core.errors import BenchError
from bench.core.files import hash_files
from bench.core.validation import first_line
from bench.data.resize import square_resize
from bench.data.source import Decoded, Reader, Source
from bench.data.table import SPLIT_NAMES, canonical_labels, check_table

SIZES = (28, 64, 128, 224)
SETTINGS = {"file", "labels"}  # the keys of [params.medmnist]
KEYS = tuple(f"{split}_{kind}" for split in SPLIT_NAMES for kind in ("images", "labels"))
LAYOUT = (
    f"a MedMNIST file is a NumPy .npz archive (numpy.savez) of {', '.join(KEYS)}: uint8 "
    "images N×H×W or N×H×W×3 and integer class indices N or N×1"
)


def _settings(params: dict[str, Any], root: Path) -> dict[str, Any]:
    """`[params.medmnist]`, checked; `medmnist:FILE` (a file for root) goes without."""
    if root.is_file() and "medmnist" not in params:
        return {}
    settings = params.get("medmnist")
    if not isinstance(settings, dict) or "file" not in settings or set(settings) - SETTINGS:
        raise BenchError(
            "dataset spec: format 'medmnist' needs [params.medmnist] with 'file' (e.g. "
            "'dermamnist') and 'labels' (class name of each index), and no other key; got "
            f"{settings!r}."
        )
    return settings


def files_by_size(root: Path, stem: str) -> dict[int, Path]:
    """The `stem` npz files in `root`, else in its sub-folder `stem/`, by image size."""
    names = {size: f"{stem}.npz" if size == 28 else f"{stem}_{size}.npz" for size in SIZES}
    for folder in (root, root / stem):
        found = {size: folder / name for size, name in names.items() if (folder / name).is_file()}
        if found:
            return found
    return {}


def choose_file(files: dict[int, Path], image_size: int) -> Path:
    """The smallest file whose images are at least `image_size`, else the largest."""
    large_enough = [size for size in files if size >= image_size]
    return files[min(large_enough) if large_enough else max(files)]


def detect(root: Path, params: dict[str, Any]) -> bool:
    """Whether `root` is an npz file (`medmnist:FILE`) or holds any size of the spec's."""
    return root.is_file() or bool(files_by_size(root, _settings(params, root)["file"]))


def _load(path: Path) -> dict[str, np.ndarray]:
    """Every array of the npz file at `path`; anything else is a one-line error."""
    advice = f"{LAYOUT}. Download it again (`bench data download NAME`) or write it so"
    try:
        if not zipfile.is_zipfile(path):  # a .npy, a pickle, text, a truncated download
            raise BenchError(f"{path}: not an .npz archive (not a zip file); {advice}.")
        with np.load(path, allow_pickle=False) as stored:
            missing = [key for key in KEYS if key not in stored.files]
            if missing:
                raise BenchError(
                    f"{path}: missing array(s) {', '.join(missing)} (found "
                    f"{', '.join(stored.files) or 'none'}); {LAYOUT}."
                )
            return {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise BenchError(
            f"{path}: not a readable .npz file ({first_line(error)}); {advice}."
        ) from error


def _open(path: Path) -> dict[str, np.ndarray]:
    """Every split's images and labels, checked: uint8 N×H×W or N×H×W×3 images, integer
    labels of shape N or N×1."""
    arrays = _load(path)
    for split in SPLIT_NAMES:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        rgb = images.ndim == 4 and images.shape[-1] == 3
        if images.dtype != np.uint8 or not (images.ndim == 3 or rgb):
            raise BenchError(
                f"{path}: {split}_images must be uint8 N×H×W or N×H×W×3, got "
                f"{images.dtype} {images.shape}; save 0-255 pixels as uint8, channels last."
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


def _indices(arrays: dict[str, np.ndarray], split: str) -> np.ndarray:
    return np.asarray(arrays[f"{split}_labels"]).reshape(-1).astype(np.int64)


def class_of_index(arrays: dict[str, np.ndarray], labels: list[str], path: Path) -> dict[int, str]:
    """The class name of each label index present: `labels[index]` (the spec's names, in
    index order) or, without them, the index itself as text. An index outside `labels` (or
    below 0) is an error naming its split and position."""
    high = len(labels) if labels else None
    for split in SPLIT_NAMES:
        indices = _indices(arrays, split)
        bad = np.flatnonzero((indices < 0) | (indices >= (high if high is not None else np.inf)))
        if bad.size:
            expected = f"0..{high - 1}" if high is not None else "0 or more"
            given = f" (the {high} names of [params.medmnist] labels)" if high is not None else ""
            raise BenchError(
                f"{path}: {split}_labels[{bad[0]}] = {indices[bad[0]]} is not a class index "
                f"{expected}{given}; {bad.size} such label(s) in {split}. Fix the file or the "
                "dataset spec's labels."
            )
    present = sorted(set().union(*(set(_indices(arrays, s).tolist()) for s in SPLIT_NAMES)))
    return {index: labels[index] if labels else str(index) for index in present}


def _table(arrays: dict[str, np.ndarray], names: dict[int, str], path: Path) -> pd.DataFrame:
    """One row per image, split by split: id `<split>-<position>`, each its own group."""
    parts = []
    for split in SPLIT_NAMES:
        indices = _indices(arrays, split).tolist()
        items = [f"{split}-{i:05d}" for i in range(len(indices))]
        parts.append(
            pd.DataFrame(
                {
                    "item_id": items,
                    "label": [names[index] for index in indices],
                    "group": items,
                    "split": split,
                    "origin": [f"{path}, {split} item {i}" for i in range(len(indices))],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def read(root: Path, classes: tuple[str, ...], params: dict[str, Any], name: str) -> Source:
    """The items of every size variant's split, labelled through `labels`; decoding picks the
    file that best fits the requested image size. Classes: the spec's, else the names of the
    indices present, in index order."""
    settings = _settings(params, root)
    if root.is_file():  # `medmnist:FILE` (or a data root naming one file): that file alone
        arrays = _open(root)
        files = {int(arrays["train_images"].shape[1]): root}
    else:
        files = files_by_size(root, settings["file"])
        arrays = _open(files[min(files)])
    reference = files[min(files)]
    names = class_of_index(arrays, list(settings.get("labels", [])), reference)
    table = _table(arrays, names, reference)
    classes = classes or tuple(dict.fromkeys(names[index] for index in sorted(names)))
    table["label"] = canonical_labels(table["label"], classes)
    check_table(table, classes)

    def decode(image_size: int, skip_bad: bool, progress: bool) -> Decoded:
        path = choose_file(files, image_size)
        source = arrays if path == reference else _open(path)
        for split in SPLIT_NAMES:
            if not np.array_equal(_indices(source, split), _indices(arrays, split)):
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
        root=reference.parent,
        table=table,
        class_names=classes,
        content=hash_files(sorted(files.values())),
        decode=decode,
        notes={"files": ", ".join(str(path) for _, path in sorted(files.items()))},
    )


READER = Reader(detect, read)
