"""Item tables: one row per image, the common form every on-disk format is read into.

Columns: `item_id` (unique), `label` (a class name of the dataset), `group` (the unit that
must not straddle splits, e.g. a lesion; the item id when unknown), `split` (`train`, `val`,
`test`, or empty when the source does not assign one), `origin` (file and line that listed the
item, for error messages) and, for image files, `path`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from bench.core.errors import BenchError

COLUMNS = ("item_id", "label", "group", "split", "origin")
SPLIT_NAMES = ("train", "val", "test")


def normalise_label(name: str) -> str:
    """The comparable form of a class name: case, surrounding space and separators ignored."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def canonical_labels(labels: pd.Series, classes: tuple[str, ...]) -> pd.Series:
    """`labels` in the spec's spelling where they match a class up to case and separators;
    others are left as they are, for `check_table` to report with their row."""
    canonical = {normalise_label(c): c for c in classes}
    return labels.map(lambda label: canonical.get(normalise_label(label), label))


def settle_classes(table: pd.DataFrame, classes: tuple[str, ...]) -> tuple[str, ...]:
    """The dataset's classes: the spec's (labels respelled to match, then checked) or, when it
    lists none, the labels found, sorted."""
    if classes:
        table["label"] = canonical_labels(table["label"], classes)
    else:
        classes = tuple(sorted(set(table["label"])))
    check_table(table, classes)
    return classes


def check_table(table: pd.DataFrame, classes: tuple[str, ...]) -> None:
    """Raise a located error for duplicate item ids, empty labels or labels outside
    `classes`."""
    empty = table[table["label"].fillna("").astype(str).str.strip() == ""]
    if len(empty):
        raise BenchError(
            f"{empty.iloc[0]['origin']}: the label is empty ({len(empty)} row(s) in all); give "
            "every image its class, or leave the row out."
        )
    duplicated = table[table["item_id"].duplicated(keep="first")]
    if len(duplicated):
        row = duplicated.iloc[0]
        first = table[table["item_id"] == row["item_id"]].iloc[0]
        raise BenchError(
            f"{row['origin']}: duplicate image id {row['item_id']!r} (first listed at "
            f"{first['origin']}); list each image once."
        )
    unknown = table[~table["label"].isin(classes)]
    if len(unknown):
        row = unknown.iloc[0]
        raise BenchError(
            f"{row['origin']}: label {row['label']!r} is not one of {', '.join(classes)} "
            f"({len(unknown)} row(s) in all). Fix the label or add the class to the dataset spec."
        )
    bad_split = table[~table["split"].isin(("", *SPLIT_NAMES))]
    if len(bad_split):
        row = bad_split.iloc[0]
        raise BenchError(
            f"{row['origin']}: split {row['split']!r} is not train, val, test or empty."
        )


def check_files_exist(table: pd.DataFrame, help_text: str = "") -> None:
    """Raise a located error for the first listed image whose file is missing."""
    missing = table[~table["path"].map(Path.is_file)]
    if len(missing):
        row = missing.iloc[0]
        raise BenchError(
            f"{row['origin']}: image {row['path']} is listed but not found "
            f"({len(missing)} missing in all). {help_text}".rstrip()
        )


def read_listing(path: Path) -> pd.DataFrame:
    """A CSV as strings (no index column, empty cells kept empty); a parse error, or a row
    with more fields than the header, is an error naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False)
    except (
        pd.errors.ParserError,
        pd.errors.ParserWarning,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
    ) as error:
        raise BenchError(f"{path}: not a readable CSV file ({error}).") from error
    except OSError as error:
        raise BenchError(f"{path}: cannot read ({error}).") from error


def settle_group_splits(table: pd.DataFrame) -> None:
    """Give a group's unassigned items the split its other items were given, so that drawing
    the missing splits cannot separate them; a group given two different splits is an error
    (a leak in the source's split)."""
    given = table[table["split"] != ""]
    spread = given.groupby("group")["split"].nunique()
    leaking = spread[spread > 1]
    if len(leaking):
        group = leaking.index[0]
        rows = given[given["group"] == group]
        raise BenchError(
            f"{rows.iloc[0]['origin']}: group {group!r} appears in splits "
            f"{', '.join(sorted(set(rows['split'])))}; a group (lesion, patient) must stay in "
            "one split. Fix the split column."
        )
    split_of = dict(zip(given["group"], given["split"], strict=True))
    unassigned = table["split"] == ""
    table.loc[unassigned, "split"] = [split_of.get(g, "") for g in table.loc[unassigned, "group"]]


def counts_by_class(table: pd.DataFrame, classes: tuple[str, ...]) -> dict[str, int]:
    """Items per class, in class order."""
    counts = table["label"].value_counts()
    return {c: int(counts.get(c, 0)) for c in classes}
