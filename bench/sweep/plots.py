"""A study's plots: optimisation history, parameter importances, parallel coordinates."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import optuna
from optuna.visualization import matplotlib as views


def save_plots(study: optuna.Study, folder: Path) -> tuple[list[Path], list[str]]:
    """Optimisation history, parameter importances and parallel coordinates as PNGs beside
    the study; returns the files and why any could not be drawn."""
    folder.mkdir(parents=True, exist_ok=True)
    written, skipped = [], []
    plots: dict[str, Callable[[optuna.Study], Any]] = {
        "history": views.plot_optimization_history,
        "importances": views.plot_param_importances,
        "parallel": views.plot_parallel_coordinate,
    }
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():  # these views are marked experimental by Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = plot(study)
        except (ValueError, RuntimeError) as error:
            skipped.append(f"{name}: {error}")
            continue
        figure = np.atleast_1d(axes).flat[0].figure
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=120, bbox_inches="tight")
        written.append(path)
        plt.close(figure)
    return written, skipped
