"""A study's results archive (`studies/<name>/`), small enough for git: per dataset one table
of its runs (`<dataset>.csv`) and their test predictions (`<dataset>.npz`), enough to re-derive
every table, test and interval of the comparison without training.

A row holds what identifies a run (id, method, seeds, settings id, split and test-set
digests), where and with what it ran (commit, versions, device, threads, stage-1 seconds), and
every scalar test metric with the per-class recall. The predictions are each run's predicted
test labels (`pred:<run id>`) and, once per test set, its true labels (`labels:<digest>`):
what a bootstrap over test images resamples.

Archives merge (another session, machine or lab): a run present in both with the same numbers
is kept once; with other numbers it is an error when both ran on the same device at the same
thread count (the numbers should be identical), and otherwise one is kept by the rule the user
names (`prefer`), never silently. So is a cell (method, settings, seeds, split) run in both
under two run ids, as on cpu and on cuda, whose device type enters the run id; the run not
kept leaves the archive.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.components.metrics import balanced_accuracy
from bench.components.scalars import SCALARS
from bench.core.errors import BenchError
from bench.core.files import stable_hash, write_atomic, write_text_atomic
from bench.results.store import ResultsStore

IDENTITY = ("run_id", "dataset", "method", "settings_id", "data_seed", "train_seed", "split_hash")
PROVENANCE = ("test_digest", "git_commit", "bench_version", "torch_version", "device", "threads")
# Read as text whatever they hold: a hex digest of digits only is not a number.
TEXT = tuple(c for c in (*IDENTITY, *PROVENANCE) if c not in ("data_seed", "train_seed", "threads"))
# Columns compared when a run is found twice: its numbers.
NUMBERS = (*SCALARS, "val_balanced_accuracy")
PREFER = ("kept", "incoming")  # on a conflict: the archive's row, or the one merged into it
# One run of a study's grid on one split: two run ids here differ in the device type.
CELL = ("method", "settings_id", "data_seed", "train_seed", "split_hash")


def test_digest(store: ResultsStore, split_hash: str) -> str:
    """The digest of a split's test items, from its manifest (without one: the split's own
    digest, a test set of its own)."""
    try:
        manifest = json.loads((store.splits_dir / f"split-{split_hash}.json").read_text())
        return stable_hash(manifest["items"]["test"])
    except (OSError, ValueError, KeyError, TypeError):
        return split_hash


@dataclass
class DatasetArchive:
    """One dataset's runs (a row each, by run id) and their test predictions."""

    runs: pd.DataFrame
    predicted: dict[str, np.ndarray]  # run id → predicted test labels
    labels: dict[str, np.ndarray]  # test digest → true test labels

    @classmethod
    def empty(cls) -> DatasetArchive:
        """An archive without runs."""
        return cls(pd.DataFrame(columns=[*IDENTITY, *PROVENANCE]), {}, {})

    def select(self, run_ids: Iterable[str]) -> DatasetArchive:
        """The archive of `run_ids` alone."""
        keep = self.runs[self.runs["run_id"].isin(list(run_ids))]
        digests = set(keep["test_digest"])
        return DatasetArchive(
            keep.reset_index(drop=True),
            {r: self.predicted[r] for r in keep["run_id"]},
            {d: v for d, v in self.labels.items() if d in digests},
        )


def run_row(store: ResultsStore, run_id: str) -> tuple[dict[str, object], np.ndarray, np.ndarray]:
    """A finished run of `store` as an archive row, its predicted and its true test labels."""
    try:
        record, metrics = store.record(run_id), store.metrics(run_id)
        predictions = store.predictions(run_id)
        return _row(store, run_id, record, metrics, predictions)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise BenchError(
            f"{store.run_dir(run_id)}: unreadable as a finished run ({type(error).__name__}: "
            f"{error}); remove the folder and run it again."
        ) from None


def _row(
    store: ResultsStore,
    run_id: str,
    record: dict[str, Any],
    metrics: dict[str, Any],
    predictions: dict[str, np.ndarray],
) -> tuple[dict[str, object], np.ndarray, np.ndarray]:
    config, test = record["config"], metrics["test"]
    split_hash = config["split"].get("hash", "")
    row: dict[str, object] = {
        "run_id": run_id,
        "dataset": config["dataset"]["name"],
        "method": config["method"]["name"],
        "settings_id": record.get("settings_id", ""),
        "data_seed": config["split"]["data_seed"],
        "train_seed": config["train_seed"],
        "split_hash": split_hash,
        # Without a split digest (older records) a data seed is a test set of its own.
        "test_digest": test_digest(store, split_hash)
        if split_hash
        else f"seed-{config['split']['data_seed']}",
        "git_commit": record.get("git_commit", ""),
        "bench_version": record.get("versions", {}).get("bench", ""),
        "torch_version": record.get("versions", {}).get("torch", ""),
        "device": record.get("device_name", ""),
        "threads": record.get("torch_threads"),
        "stage1_seconds": (record.get("stage1") or {}).get("train_s"),
        "run_seconds": _run_seconds(record.get("timings") or {}),
    }
    row.update({key: test.get(key) for key in SCALARS})
    row["val_balanced_accuracy"] = metrics["val"]["balanced_accuracy"]
    for name in config["dataset"]["classes"]:
        row[f"recall_{name}"] = test["per_class"][name]["recall"]
    predicted = predictions["test_logits"].argmax(axis=1)
    labels = predictions["test_labels"]
    recorded = test["balanced_accuracy"]
    recomputed = balanced_accuracy(labels, predicted)
    if not math.isclose(recorded, recomputed, abs_tol=1e-9):
        raise BenchError(
            f"{store.run_dir(run_id)}: its predictions give a test balanced accuracy of "
            f"{recomputed:.6f}, its metrics.json {recorded:.6f}; the run folder is inconsistent "
            "(remove it and run it again)."
        )
    return row, predicted.astype(np.int16), labels.astype(np.int16)


def _run_seconds(timings: dict[str, float]) -> float | None:
    """A run's training (its stage 1 when it trained one, and its stage 2) and evaluation
    seconds in its worker."""
    if "train_s" not in timings:
        return None
    return round(timings["train_s"] + timings.get("eval_s", 0.0), 3)


def from_results(store: ResultsStore, run_ids: Iterable[str]) -> DatasetArchive:
    """The archive of the finished runs `run_ids` of a results folder."""
    rows, predicted, labels = [], {}, {}
    for run_id in run_ids:
        row, pred, truth = run_row(store, run_id)
        rows.append(row)
        predicted[run_id] = pred
        labels[str(row["test_digest"])] = truth
    runs = pd.DataFrame(rows) if rows else DatasetArchive.empty().runs
    return DatasetArchive(runs, predicted, labels)


def read_archive(folder: Path, dataset: str) -> DatasetArchive:
    """The archive of `dataset` in `folder` (empty when there is none)."""
    table, arrays = folder / f"{dataset}.csv", folder / f"{dataset}.npz"
    if not table.exists():
        return DatasetArchive.empty()
    try:
        runs = pd.read_csv(table, dtype=dict.fromkeys(TEXT, str))
        with np.load(arrays) as stored:
            predicted = {k.removeprefix("pred:"): stored[k] for k in stored if k[:5] == "pred:"}
            labels = {k.removeprefix("labels:"): stored[k] for k in stored if k[:7] == "labels:"}
    except (OSError, ValueError, KeyError) as error:
        raise BenchError(f"archive {table}: unreadable ({error}); restore it from git.") from None
    if absent := [c for c in (*IDENTITY, *PROVENANCE) if c not in runs.columns]:
        raise BenchError(f"archive {table}: no column {absent[0]!r}; restore it from git.")
    runs[list(TEXT)] = runs[list(TEXT)].fillna("")  # an empty cell is empty text
    if unlabelled := sorted(set(runs["test_digest"].astype(str)) - set(labels)):
        raise BenchError(
            f"archive {arrays}: no labels of test set {unlabelled[0]!r}; the two files come "
            "from different exports (restore both from git)."
        )
    missing = [r for r in runs["run_id"] if r not in predicted]
    if missing:
        raise BenchError(
            f"archive {arrays}: no predictions of {len(missing)} run(s) of {table.name}, first "
            f"{missing[0]}; the two files come from different exports (restore both from git)."
        )
    return DatasetArchive(runs, predicted, labels)


def write_archive(folder: Path, dataset: str, archive: DatasetArchive) -> None:
    """Write `<dataset>.csv` and `<dataset>.npz` to `folder` (rows sorted by method, data
    seed, train seed: an unchanged archive is written byte for byte the same)."""
    runs = archive.runs.sort_values(["method", "data_seed", "train_seed", "run_id"])
    buffer = io.BytesIO()
    arrays = {f"pred:{r}": archive.predicted[r] for r in runs["run_id"]}
    arrays |= {f"labels:{d}": archive.labels[d] for d in sorted(set(runs["test_digest"]))}
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / f"{dataset}.npz", buffer.getvalue())
    write_text_atomic(folder / f"{dataset}.csv", runs.to_csv(index=False))


@dataclass(frozen=True)
class Merged:
    """The merged archive, and what merging did: rows added, rows found twice alike, and
    conflicts resolved by the preference (run id, the row kept)."""

    archive: DatasetArchive
    added: int
    same: int
    resolved: tuple[str, ...]


def merge(kept: DatasetArchive, incoming: DatasetArchive, prefer: str | None) -> Merged:
    """`incoming` merged into `kept` (see the module's rule); `prefer` is `kept`, `incoming`
    or None (a conflict is then an error that lists them)."""
    if prefer not in (None, *PREFER):
        raise BenchError(f"prefer must be one of {', '.join(PREFER)}, got {prefer!r}.")
    _refuse_repeated_cells(incoming)
    old = kept.runs.set_index("run_id", drop=False)
    rows = [row for _, row in old.iterrows()]
    index = {run_id: k for k, run_id in enumerate(old.index)}
    cells = {_cell(row): str(row["run_id"]) for row in rows}  # the kept archive's cells
    predicted, labels = dict(kept.predicted), dict(kept.labels)
    added = same = 0
    conflicts, resolved = [], []
    for _, row in incoming.runs.iterrows():
        run_id = row["run_id"]
        labels.setdefault(row["test_digest"], incoming.labels[row["test_digest"]])
        if run_id not in index and (other := cells.get(_cell(row))) is not None:
            # The same cell and split under another run id (another device type).
            if prefer is None:
                conflicts.append(run_id)
                continue
            if prefer == "incoming":
                index[run_id] = index.pop(other)
                rows[index[run_id]] = row
                predicted.pop(other)
                predicted[run_id] = incoming.predicted[run_id]
                cells[_cell(row)] = run_id
            resolved.append(run_id)
            continue
        if run_id not in index:
            index[run_id] = len(rows)
            rows.append(row)
            predicted[run_id] = incoming.predicted[run_id]
            added += 1
            continue
        present = rows[index[run_id]]
        if _same_numbers(present, row) and np.array_equal(
            predicted[run_id], incoming.predicted[run_id]
        ):
            same += 1
            continue
        if _same_place(present, row):
            raise BenchError(
                f"run {run_id} is recorded twice on {row['device']} at {row['threads']} "
                f"thread(s) with different numbers (test BAcc {present['balanced_accuracy']} and "
                f"{row['balanced_accuracy']}): the same code there gives the same numbers, so one "
                "of them is not what it claims; find which and remove it."
            )
        if prefer is None:
            conflicts.append(run_id)
        elif prefer == "incoming":
            rows[index[run_id]] = row
            predicted[run_id] = incoming.predicted[run_id]
            resolved.append(run_id)
        else:
            resolved.append(run_id)
    if conflicts:
        raise BenchError(
            f"{len(conflicts)} run(s) are recorded twice with different numbers on different "
            "machines or thread counts, or run a cell the archive holds under another run id "
            f"(another device type), first {conflicts[0]}; name which to keep with "
            "--prefer kept (the archive's) or --prefer incoming."
        )
    runs = pd.DataFrame(rows).reset_index(drop=True) if rows else kept.runs
    return Merged(DatasetArchive(runs, predicted, labels), added, same, tuple(resolved))


def _cell(row: pd.Series) -> tuple[str, ...]:
    return tuple(str(row[column]) for column in CELL)


def _refuse_repeated_cells(incoming: DatasetArchive) -> None:
    """Runs merged in must hold each cell once: which of two to keep is not a rule of origin."""
    runs = incoming.runs
    if runs.empty:
        return
    repeated = runs[runs.duplicated(list(CELL), keep=False)]
    if not repeated.empty:
        first = repeated.iloc[0]
        twins = repeated[[_cell(row) == _cell(first) for _, row in repeated.iterrows()]]
        raise BenchError(
            f"the runs merged in hold one cell twice ({first['method']} at data seed "
            f"{first['data_seed']}, train seed {first['train_seed']}: "
            f"{' and '.join(map(str, twins['run_id']))}, on "
            f"{' and '.join(map(str, twins['device']))}); remove one of them (its run folder) "
            "and merge again."
        )


def _same_numbers(first: pd.Series, second: pd.Series) -> bool:
    columns = [c for c in first.index if c in NUMBERS or c.startswith("recall_")]
    return all(_equal(first.get(c), second.get(c)) for c in columns)


def _equal(a: object, b: object) -> bool:
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in (a, b)]
    if any(missing):
        return all(missing)
    return math.isclose(float(a), float(b), rel_tol=0, abs_tol=1e-12)  # type: ignore[arg-type]


def _same_place(first: pd.Series, second: pd.Series) -> bool:
    return str(first["device"]) == str(second["device"]) and str(first["threads"]) == str(
        second["threads"]
    )
