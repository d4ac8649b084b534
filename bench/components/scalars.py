"""The scalar metrics a split's `metrics.json` records, named once for the runs table, the
report and `bench compare --metric`. Importing this module imports nothing heavy (the command
line builds its choices from it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scalar:
    """A scalar metric: its key in `metrics.json` (and column in `runs.csv`), its short name in
    table headers, its name in sentences, and whether higher is better. Tables show it × 100,
    so one point is 0.01 of the metric."""

    key: str
    short: str
    long: str
    higher_is_better: bool = True


SCALARS = {
    scalar.key: scalar
    for scalar in (
        Scalar("accuracy", "Acc", "accuracy"),
        Scalar("balanced_accuracy", "BAcc", "balanced accuracy"),
        Scalar("macro_f1", "Macro-F1", "macro-F1"),
        Scalar("auroc", "AUROC", "macro AUROC"),
        Scalar("auprc", "AUPRC", "macro AUPRC"),
        Scalar("qwk", "QWK", "quadratic-weighted kappa"),
        Scalar("ece", "ECE", "expected calibration error", higher_is_better=False),
    )
}
