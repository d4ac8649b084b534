"""One folder per class (SD-198, chest X-ray sets, any user data), optionally split in advance.

    ROOT/<class>/<image>                 classes from folder names
    ROOT/{train,val,test}/<class>/<image>   the folders' own split (Kermany's chest_xray);
                                            a spec's [split] keep says which parts are kept

Image files are those with the suffixes in IMAGE_SUFFIXES; other files are ignored. With spec
parameter `group_pattern`, a regular expression whose first group, matched against the file
name, names the patient or lesion (e.g. `^(person\\d+)_` for chest_xray); otherwise each image
is its own group.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from bench.core.errors import BenchError
from bench.data.decode import file_source
from bench.data.formats import FORMATS
from bench.data.source import Reader, Source
from bench.data.table import SPLIT_NAMES, settle_classes, settle_group_splits

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_folders(root: Path) -> dict[str, Path]:
    return {s: root / s for s in SPLIT_NAMES if (root / s).is_dir()}


def detect(root: Path, params: dict[str, Any]) -> bool:
    """Whether `root` has class folders, all holding images (directly or under
    train/val/test); the strict test keeps a parent of several datasets from passing."""
    if not root.is_dir():
        return False
    tops = list(_split_folders(root).values()) or [root]
    folders = [c for top in tops for c in _class_folders(top)]
    return bool(folders) and all(_images(c) for c in folders)


def read(root: Path, classes: tuple[str, ...], params: dict[str, Any], name: str) -> Source:
    """Every image under a class folder; class names from the folders unless the spec lists
    them."""
    pattern = params.get("group_pattern")
    try:
        grouper = re.compile(pattern) if pattern else None
    except re.error as error:
        raise BenchError(
            f"dataset spec: group_pattern {pattern!r} is invalid ({error})."
        ) from error
    if grouper is not None and grouper.groups < 1:
        raise BenchError(
            f"dataset spec: group_pattern {pattern!r} needs a capture group, e.g. "
            "'^(person\\d+)_', whose match names the patient."
        )
    splits = _split_folders(root)
    rows = []
    for split, top in (splits or {"": root}).items():
        for folder in _class_folders(top):
            for path in _images(folder):
                match = grouper.search(path.name) if grouper else None
                item = path.relative_to(root).as_posix()
                group = match.group(1) if match else item
                rows.append((item, folder.name, group, split, str(path), path))
    if not rows:
        raise BenchError(
            f"{root}: no images in class sub-folders. {FORMATS.meta('imagefolder').layout_help}"
        )
    table = pd.DataFrame(rows, columns=["item_id", "label", "group", "split", "origin", "path"])
    classes = settle_classes(table, classes)
    settle_group_splits(table)
    notes = {"split_folders": sorted(splits)}
    return file_source("imagefolder", root, table, classes, [], name, notes)


READER = Reader(detect, read)
