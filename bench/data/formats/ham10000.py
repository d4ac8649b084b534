"""The HAM10000 layout: `HAM10000_metadata.csv` + `HAM10000_images_part_{1,2}/ISIC_*.jpg`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.core.errors import BenchError
from bench.data.decode import file_source
from bench.data.formats import FORMATS
from bench.data.source import Reader, Source
from bench.data.table import canonical_labels, check_files_exist, check_table, read_listing

METADATA = "HAM10000_metadata.csv"
IMAGE_FOLDERS = ("HAM10000_images_part_1", "HAM10000_images_part_2")
REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx")


def detect(root: Path, params: dict[str, Any]) -> bool:
    """Whether `root` holds the HAM10000 metadata file."""
    return (root / METADATA).is_file()


def read(root: Path, classes: tuple[str, ...], params: dict[str, Any], name: str) -> Source:
    """The metadata table as items grouped by `lesion_id`, each row checked."""
    csv_path = root / METADATA
    raw = read_listing(csv_path)
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise BenchError(
            f"{csv_path}: missing column(s) {', '.join(missing)}; found {', '.join(raw.columns)}."
        )
    files = {
        p.stem: p
        for folder in IMAGE_FOLDERS
        if (root / folder).is_dir()
        for p in (root / folder).glob("*.jpg")
    }
    table = pd.DataFrame(
        {
            "item_id": raw["image_id"],
            "label": canonical_labels(raw["dx"], classes),
            "group": raw["lesion_id"].where(raw["lesion_id"] != "", raw["image_id"]),
            "split": "",
            "origin": [f"{csv_path}, line {i + 2}" for i in range(len(raw))],
            "path": [files.get(i, root / IMAGE_FOLDERS[0] / f"{i}.jpg") for i in raw["image_id"]],
        }
    )
    check_table(table, classes)
    check_files_exist(table, FORMATS.meta("ham10000").layout_help)
    return file_source("ham10000", root, table, classes, [csv_path], name)


READER = Reader(detect, read)
