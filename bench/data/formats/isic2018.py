"""The ISIC 2018 Task 3 layout: input folders of JPEGs plus one-hot ground-truth CSVs.

    ROOT/ISIC2018_Task3_Training_Input/ISIC_*.jpg
    ROOT/ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv
    ROOT/ISIC2018_Task3_Training_LesionGroupings.csv          (optional: lesion-grouped splits)
    ROOT/ISIC2018_Task3_{Validation,Test}_{Input,GroundTruth}  (optional: official splits)

Ground-truth CSVs may also sit directly in ROOT. Columns: `image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`,
one 1.0 per row. The official validation and test parts become the val and test splits when
their ground truth is present; otherwise those splits are drawn from the training part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.core.errors import BenchError
from bench.data.decode import file_source
from bench.data.formats import FORMATS
from bench.data.source import Reader, Source
from bench.data.table import (
    canonical_labels,
    check_files_exist,
    check_table,
    read_listing,
    settle_group_splits,
)

PARTS = {"Training": "train", "Validation": "val", "Test": "test"}
GROUPINGS = "ISIC2018_Task3_Training_LesionGroupings.csv"


def _ground_truth(root: Path, part: str) -> Path | None:
    name = f"ISIC2018_Task3_{part}_GroundTruth.csv"
    for path in (root / f"ISIC2018_Task3_{part}_GroundTruth" / name, root / name):
        if path.is_file():
            return path
    return None


def detect(root: Path, params: dict[str, Any]) -> bool:
    """Whether `root` holds the ISIC 2018 Task 3 training ground truth."""
    return _ground_truth(root, "Training") is not None


def _read_part(root: Path, part: str, csv_path: Path, classes: tuple[str, ...]) -> pd.DataFrame:
    raw = read_listing(csv_path)
    columns = [c for c in raw.columns if c != "image"]
    if "image" not in raw.columns or sorted(
        canonical_labels(pd.Series(columns), classes)
    ) != sorted(classes):
        raise BenchError(
            f"{csv_path}: columns must be 'image' and one per class "
            f"({', '.join(c.upper() for c in classes)}); found {', '.join(raw.columns)}."
        )
    origins = [f"{csv_path}, line {i + 2}" for i in range(len(raw))]
    try:
        onehot = raw[columns].astype(float)
    except ValueError as error:
        raise BenchError(f"{csv_path}: class columns must hold 0 or 1 ({error}).") from error
    hot = onehot.to_numpy() == 1.0
    wrong = (hot.sum(axis=1) != 1).nonzero()[0]
    if len(wrong):
        raise BenchError(
            f"{origins[wrong[0]]}: image {raw['image'].iloc[wrong[0]]!r} must have exactly one "
            f"class column set to 1 ({len(wrong)} such row(s))."
        )
    names = canonical_labels(pd.Series(columns), classes)
    folder = root / f"ISIC2018_Task3_{part}_Input"
    return pd.DataFrame(
        {
            "item_id": raw["image"],
            "label": [names.iloc[k] for k in hot.argmax(axis=1)],
            "group": raw["image"],
            "split": PARTS[part] if part != "Training" else "",
            "origin": origins,
            "path": [folder / f"{image}.jpg" for image in raw["image"]],
        }
    )


def read(root: Path, classes: tuple[str, ...], params: dict[str, Any], name: str) -> Source:
    """Every part whose ground truth is present, lesion-grouped where groupings are given."""
    parts, files = [], []
    for part in PARTS:
        csv_path = _ground_truth(root, part)
        if csv_path is not None:
            parts.append(_read_part(root, part, csv_path, classes))
            files.append(csv_path)
    table = pd.concat(parts, ignore_index=True)
    groupings = root / GROUPINGS
    if groupings.is_file():
        lesions = read_listing(groupings)
        if not {"image", "lesion_id"} <= set(lesions.columns):
            raise BenchError(
                f"{groupings}: needs columns 'image' and 'lesion_id'; found "
                f"{', '.join(lesions.columns)}."
            )
        conflicting = lesions[lesions.duplicated("image", keep=False)].drop_duplicates()
        conflicting = conflicting[conflicting.duplicated("image", keep=False)]
        if len(conflicting):
            line = int(conflicting.index[-1]) + 2
            raise BenchError(
                f"{groupings}, line {line}: image {conflicting['image'].iloc[0]!r} is given two "
                "lesion ids; keep one row per image."
            )
        lesion_of = dict(zip(lesions["image"], lesions["lesion_id"], strict=True))
        table["group"] = [lesion_of.get(i) or i for i in table["item_id"]]
        files.append(groupings)
    check_table(table, classes)
    settle_group_splits(table)
    check_files_exist(table, FORMATS.meta("isic2018").layout_help)
    notes = {"official_parts": [p for p in PARTS if _ground_truth(root, p)]}
    return file_source("isic2018", root, table, classes, files, name, notes)


READER = Reader(detect, read)
