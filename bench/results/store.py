"""The results folder: one directory per run, the flat runs table, crash-safe writes."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.components.catalogue import SAMPLERS
from bench.core.errors import BenchError
from bench.core.files import write_atomic, write_json_atomic, write_text_atomic
from bench.data.specs import DatasetSpec
from bench.experiment.conditions import Conditions
from bench.experiment.experiment import current_settings_ids
from bench.recipes.methods import MethodRegistry

RUN_FILE, METRICS_FILE, PREDICTIONS_FILE = "run.json", "metrics.json", "predictions.npz"
# Metrics recorded since issue 22 (kappa for ordinal tasks only): columns where a run has them.
ADDED_METRICS = ("auroc", "auprc", "qwk")


class ResultsStore:
    """`results/<dataset>/`: runs/<run_id>/{run.json, metrics.json, predictions.npz}, runs.csv."""

    def __init__(self, results_dir: Path, dataset: str) -> None:
        self.root = results_dir / dataset
        self.runs_dir = self.root / "runs"
        self.splits_dir = self.root / "splits"

    def run_dir(self, run_id: str) -> Path:
        """The folder of one run."""
        return self.runs_dir / run_id

    def is_done(self, run_id: str) -> bool:
        """Whether the run finished: its metrics exist and its record says `done`."""
        folder = self.run_dir(run_id)
        if not (folder / METRICS_FILE).exists() or not (folder / RUN_FILE).exists():
            return False
        return status(json.loads((folder / RUN_FILE).read_text()))[0] == "done"

    def save_done(
        self, record: dict[str, Any], metrics: dict[str, Any], predictions: dict[str, np.ndarray]
    ) -> None:
        """Write a finished run; `run.json` goes last so it marks completeness."""
        folder = self.run_dir(record["run_id"])
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **predictions)  # type: ignore[arg-type]
        write_atomic(folder / PREDICTIONS_FILE, buffer.getvalue(), durable=True)
        write_json_atomic(folder / METRICS_FILE, metrics, durable=True)
        write_json_atomic(folder / RUN_FILE, {**record, "status": "done"}, durable=True)

    def save_failed(self, record: dict[str, Any], error: str) -> None:
        """Record a run that raised, with its error, so the sweep can go on."""
        write_json_atomic(
            self.run_dir(record["run_id"]) / RUN_FILE,
            {**record, "status": "failed", "error": error},
        )

    def runs_table(self) -> pd.DataFrame:
        """One row per run found on disk (done or failed), with test metrics flattened."""
        rows = []
        for run_file in sorted(self.runs_dir.glob(f"*/{RUN_FILE}")):
            record = json.loads(run_file.read_text())
            metrics_file = run_file.parent / METRICS_FILE
            metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else None
            state, error = status(record)
            record = {**record, "status": state, "error": error}
            rows.append(_flatten(record, metrics if state == "done" else None))
        return pd.DataFrame(rows)

    def metrics(self, run_id: str) -> dict[str, Any]:
        """A recorded run's `metrics.json`."""
        return json.loads((self.run_dir(run_id) / METRICS_FILE).read_text())

    def record(self, run_id: str) -> dict[str, Any]:
        """A recorded run's `run.json`."""
        return json.loads((self.run_dir(run_id) / RUN_FILE).read_text())

    def predictions(self, run_id: str) -> dict[str, np.ndarray]:
        """A recorded run's logits and labels of val and test."""
        with np.load(self.run_dir(run_id) / PREDICTIONS_FILE) as stored:
            return {name: stored[name] for name in stored.files}

    def current_ids(
        self,
        spec: DatasetSpec,
        registry: MethodRegistry,
        conditions: Conditions,
        names: Iterable[str] | None = None,
    ) -> dict[str, str]:
        """The settings id each method (`names`, default: every method recorded here) has now
        under `conditions`: the one meaning of "current" that run, status, report and compare
        share. A method whose settings cannot be resolved here (a removed tuned recipe, a
        profile that clashes with its tuning) has none, so none of its runs is current.
        `spec` is taken as `conditions` take it (`--imbalance`)."""
        spec = conditions.resolve_spec(spec)
        if names is None:
            runs = self.runs_table()
            names = list(runs["method"].unique()) if not runs.empty else []
        ids: dict[str, str] = {}
        for name in names:
            try:
                ids |= current_settings_ids(
                    spec, registry, [name], conditions.overrides, conditions.profile
                )
            except BenchError:
                continue
        return ids

    def current_runs(
        self, spec: DatasetSpec, registry: MethodRegistry, conditions: Conditions
    ) -> pd.DataFrame:
        """The recorded runs (any status) made at their method's current settings."""
        runs = self.runs_table()
        if runs.empty:
            return runs
        ids = self.current_ids(spec, registry, conditions, runs["method"].unique())
        return runs_at_settings(runs, ids)

    def write_runs_csv(self) -> pd.DataFrame:
        """Rebuild `runs.csv` from the run folders (so it never duplicates or loses a run)."""
        table = self.runs_table()
        write_text_atomic(self.root / "runs.csv", table.to_csv(index=False))
        return table


def status(record: dict[str, Any]) -> tuple[str, str]:
    """A run's status and error. A run recorded as done whose training history holds a
    non-finite loss diverged (versions before divergence was checked saved such runs as
    done): it counts as failed, so it is left out of every table and run again."""
    history = record.get("history") or []
    losses = [h.get("train_loss") for h in history if isinstance(h, dict)]
    if record.get("status") == "done" and any(
        not isinstance(v, int | float) or not math.isfinite(v) for v in losses
    ):
        return "failed", "diverged: a non-finite training loss is in its history"
    return str(record.get("status")), str(record.get("error", ""))


def runs_at_settings(runs: pd.DataFrame, settings_ids: dict[str, str]) -> pd.DataFrame:
    """The runs made at their method's settings id in `settings_ids` (others left out)."""
    if runs.empty:
        return runs
    keep = [
        settings_ids.get(method) == made_at
        for method, made_at in zip(runs["method"], runs["settings_id"], strict=True)
    ]
    return runs[keep]


def _flatten(record: dict[str, Any], metrics: dict[str, Any] | None) -> dict[str, Any]:
    config = record["config"]
    row: dict[str, Any] = {
        "run_id": record["run_id"],
        "dataset": config["dataset"]["name"],
        "method": config["method"]["name"],
        "family": config["method"]["family"],
        "stage2_mode": (config["method"].get("stage2") or {}).get("mode", ""),
        "rebalancing_sampler": _rebalances(config["method"]["sampler"]["name"]),
        "variant": record.get("variant", record.get("setting")),  # older records: `setting`
        "settings_id": record.get("settings_id", ""),  # empty in records older than it
        "data_seed": config["split"]["data_seed"],
        "split_hash": config["split"].get("hash", ""),
        "train_seed": config["train_seed"],
        "status": record["status"],
        "error": record.get("error", ""),
    }
    if metrics is not None:
        test, val = metrics["test"], metrics["val"]
        row.update({k: test[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "ece")})
        # Ranking metrics and kappa where recorded (runs before them, non-ordinal tasks: none).
        row.update({k: test[k] for k in ADDED_METRICS if k in test})
        row.update({f"shot_{g}": v for g, v in test["shot_accuracy"].items()})
        row["val_balanced_accuracy"] = val["balanced_accuracy"]
        row.update({f"val_{k}": val[k] for k in ADDED_METRICS if k in val})
        # The stage-1 epoch kept, from 1 (recorded as `best_epoch` before issue 19's rules).
        row["kept_epoch"] = record.get("kept_epoch", record.get("best_epoch"))
        row["stage1_epochs"] = len(record.get("history") or []) or None  # epochs it trained
        row["train_seconds"] = record.get("timings", {}).get("train_s")
        classes = config["dataset"]["classes"]  # dataset order, not JSON's sorted keys
        row.update({f"recall_{c}": test["per_class"][c]["recall"] for c in classes})
    return row


def _rebalances(sampler: str) -> bool:
    """Whether a recorded run's sampler re-balances (a sampler since removed: no)."""
    return sampler in SAMPLERS and SAMPLERS.meta(sampler).rebalancing
