"""A CSV listing images: columns `path`, `label`, optional `group` and `split`.

Paths are relative to the CSV's folder and must stay inside it. `split` values are `train`,
`val`, `test` or empty (drawn by the harness); `group` names the lesion or patient whose images
must share a split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.core.errors import BenchError
from bench.data.decode import file_source
from bench.data.source import Reader, Source
from bench.data.table import (
    check_files_exist,
    read_listing,
    settle_classes,
    settle_group_splits,
)

REQUIRED = ("path", "label")
OPTIONAL = ("group", "split")


def csv_path(root: Path, params: dict[str, Any]) -> Path:
    """The listing file: `root` itself when it is a file, else `root/params.file`."""
    return root if root.is_file() else root / str(params.get("file", "labels.csv"))


def detect(root: Path, params: dict[str, Any]) -> bool:
    """Whether the listing file exists."""
    return csv_path(root, params).is_file()


def read(root: Path, classes: tuple[str, ...], params: dict[str, Any], name: str) -> Source:
    """The listed images, every row checked (columns, labels, ids, paths, splits, groups)."""
    listing = csv_path(root, params)
    base = listing.parent.resolve()
    raw = read_listing(listing)
    raw.columns = [c.strip().lower() for c in raw.columns]
    missing = [c for c in REQUIRED if c not in raw.columns]
    extra = [c for c in raw.columns if c not in REQUIRED + OPTIONAL]
    if missing or extra:
        raise BenchError(
            f"{listing}: columns must be path, label and optionally group, split; "
            f"found {', '.join(raw.columns)}"
            + (f" (missing {', '.join(missing)})" if missing else "")
            + (f" (unknown {', '.join(extra)})" if extra else "")
            + "."
        )
    origins = [f"{listing}, line {i + 2}" for i in range(len(raw))]
    paths = []
    for origin, text in zip(origins, raw["path"], strict=True):
        path = (base / text.strip()).resolve()
        if not text.strip() or not path.is_relative_to(base):
            raise BenchError(
                f"{origin}: path {text!r} is empty or leads outside {base}; paths must be "
                "relative to the CSV's folder and stay inside it."
            )
        paths.append(path)
    items = [p.relative_to(base).as_posix() for p in paths]
    table = pd.DataFrame(
        {
            "item_id": items,
            "label": raw["label"].str.strip(),
            "group": raw["group"].str.strip().where(raw["group"].str.strip() != "", items)
            if "group" in raw
            else items,
            "split": raw["split"].str.strip().str.lower() if "split" in raw else "",
            "origin": origins,
            "path": paths,
        }
    )
    classes = settle_classes(table, classes)
    check_files_exist(table)
    settle_group_splits(table)
    return file_source("csv", base, table, classes, [listing], name)


READER = Reader(detect, read)
