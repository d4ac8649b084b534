"""The finished runs a report is made from, with their per-run files read on demand."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.results.store import (
    ResultsStore,
    runs_at_settings,
)

# What to say when the finished runs were made at other settings than the ones asked.
SETTINGS_ADVICE = (
    "give the settings they used (the same --epochs, --image-size, --imbalance, ... as `bench run`)"
)


@dataclass(frozen=True)
class Results:
    """Done runs of one dataset (one row each, `label` naming the method and, where a method
    has runs of several variants, the variant), the method order, the classes in label-index
    order (`class_index_order`) and by training frequency (`classes`, most frequent first) with
    their training counts; `missing` lists the asked-for methods without finished runs at the
    settings asked, `other_settings` counts the done runs left out for their settings."""

    dataset: str
    folder: Path
    runs: pd.DataFrame
    labels: list[str]
    classes: list[str]
    class_index_order: list[str]
    train_counts: dict[str, int]
    missing: list[str]
    other_settings: int = 0

    @property
    def store(self) -> ResultsStore:
        """The results folder the runs were read from (its layout: `bench.results.store`)."""
        return ResultsStore(self.folder.parent, self.folder.name)

    def metrics(self, run_id: str) -> dict[str, Any]:
        """The run's `metrics.json`."""
        return self.store.metrics(run_id)

    def record(self, run_id: str) -> dict[str, Any]:
        """The run's `run.json`."""
        return self.store.record(run_id)

    def predictions(self, run_id: str) -> dict[str, np.ndarray]:
        """The run's logits and labels of val and test."""
        return self.store.predictions(run_id)

    def of(self, label: str) -> pd.DataFrame:
        """The runs of one method label."""
        return self.runs[self.runs["label"] == label]

    def only(self, run_ids: list[str]) -> Results:
        """These results restricted to the runs `run_ids` (in their order)."""
        runs = self.runs[self.runs["run_id"].isin(run_ids)].reset_index(drop=True)
        present = set(runs["label"])
        return dataclasses.replace(
            self, runs=runs, labels=[label for label in self.labels if label in present]
        )


def load_results(
    results_dir: Path,
    dataset: str,
    order: list[str] | None = None,
    settings_ids: dict[str, str] | None = None,
) -> Results:
    """Read every done run of `dataset` (in the methods of `order` when given, else all),
    ordered by `order` then by name; with `settings_ids`, only the runs of each method made
    at its settings id (methods not in it are left out)."""
    store = ResultsStore(results_dir, dataset)
    runs = store.runs_table() if store.runs_dir.is_dir() else pd.DataFrame()
    if runs.empty or not (runs["status"] == "done").any():
        raise BenchError(
            f"{store.root}: no finished runs to report on; `bench run --dataset {dataset}` first."
        )
    runs = runs[runs["status"] == "done"].copy()
    if order is not None:
        runs = runs[runs["method"].isin(order)]
        if runs.empty:
            raise BenchError(
                f"{store.root}: none of the methods {', '.join(order)} has finished runs."
            )
    other_settings = 0
    if settings_ids is not None:
        current = runs_at_settings(runs, settings_ids)
        other_settings = len(runs) - len(current)
        runs = current.copy()
        if runs.empty:
            raise BenchError(
                f"{store.root}: its {other_settings} finished run(s) were made at other "
                "settings than the current ones (or before settings were recorded); "
                f"{SETTINGS_ADVICE} or --all-settings."
            )
    missing = [m for m in order or [] if m not in set(runs["method"])]
    rank = {name: i for i, name in enumerate(order or [])}
    variants = runs.groupby("method")["variant"].nunique()
    runs["label"] = [
        m if variants[m] == 1 else f"{m} [{v}]"
        for m, v in zip(runs["method"], runs["variant"], strict=True)
    ]
    runs["rank"] = runs["method"].map(lambda m: rank.get(m, len(rank)))
    runs = runs.sort_values(["rank", "method", "variant", "data_seed", "train_seed"])
    runs = runs.drop(columns="rank").reset_index(drop=True)
    first_id = str(runs["run_id"].iloc[0])
    first = store.metrics(first_id)["test"]
    counts = {c: int(v["train_count"]) for c, v in first["per_class"].items()}
    classes = sorted(counts, key=lambda c: (-counts[c], c))
    return Results(
        dataset=dataset,
        folder=store.root,
        runs=runs,
        labels=list(dict.fromkeys(runs["label"])),
        classes=classes,
        class_index_order=list(store.record(first_id)["config"]["dataset"]["classes"]),
        train_counts=counts,
        missing=missing,
        other_settings=other_settings,
    )
