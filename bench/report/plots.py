"""The report's figures; each function writes one figure and returns the paths written (PNG,
plus PDF when asked). Figures are built with matplotlib's object API (no pyplot, no display,
no global state)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import stats
from sklearn.manifold import TSNE

from bench.components.metrics import confidence_bins, softmax
from bench.recipes.methods import FAMILIES
from bench.report.collect import Results
from bench.stage1.artefacts import ArtefactCache

FAMILY_COLOURS = dict(zip(FAMILIES, ("#4c72b0", "#dd8452", "#55a868"), strict=True))
RELIABILITY_BINS = 15
# t-SNE cost grows with points and iterations: 200 test images per class and 500 iterations
# keep a panel at seconds on a laptop CPU while still showing whether rare classes cluster.
TSNE_POINTS_PER_CLASS = 200
TSNE_ITERATIONS = 500


def save_figure(figure: Figure, path: Path, pdf: bool) -> list[Path]:
    """Write `figure` as PNG at `path` (and as PDF beside it when `pdf`); returns the files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if figure.get_layout_engine() is None:
        figure.tight_layout()
    figure.savefig(path, dpi=130)
    written = [path]
    if pdf:
        figure.savefig(path.with_suffix(".pdf"))
        written.append(path.with_suffix(".pdf"))
    return written


def mean_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """The mean of `values` and its `level` t-interval (the mean twice for one value)."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * stats.sem(values)
    return mean, mean - half, mean + half


def data_span(lows: list[float], highs: list[float]) -> tuple[float, float]:
    """Axis limits around the intervals: their span plus a margin (5 %, at least a point),
    never the full 0-100 (which hides the 1-point differences that matter)."""
    margin = max(1.0, 0.05 * (max(highs) - min(lows)))
    return min(lows) - margin, max(highs) + margin


def balanced_accuracy_intervals(results: Results, path: Path, pdf: bool = False) -> list[Path]:
    """Mean test balanced accuracy per method with its 95 % interval over seeds, sorted, on an
    axis scaled to the data (a 1-point difference stays visible), coloured by family, the
    legend outside the data."""
    rows = []
    for label in results.labels:
        values = 100 * results.of(label)["balanced_accuracy"].astype(float).to_numpy()
        family = str(results.of(label)["family"].iloc[0])
        rows.append((label, family, len(values), *mean_interval(values)))
    rows.sort(key=lambda row: row[3])  # best at the top
    figure = Figure(figsize=(7, 0.32 * len(rows) + 1.6), layout="constrained")
    axis = figure.subplots()
    y = np.arange(len(rows))
    for position, (_, family, n, mean, low, high) in zip(y, rows, strict=True):
        colour = FAMILY_COLOURS.get(family, "#777777")
        axis.plot([low, high], [position, position], color=colour, linewidth=2)
        axis.plot([mean], [position], "o", color=colour, markersize=6 if n > 1 else 4)
    axis.set_yticks(y, [f"{label} (n={n})" for label, _, n, *_ in rows], fontsize=8)
    axis.set_xlim(*data_span([row[4] for row in rows], [row[5] for row in rows]))
    axis.set_xlabel("test balanced accuracy (%): mean and 95 % interval over seeds")
    axis.grid(axis="x", alpha=0.3)
    handles = [
        Line2D([], [], color=colour, marker="o", linewidth=2, label=family)
        for family, colour in FAMILY_COLOURS.items()
        if family in {row[1] for row in rows}
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    return save_figure(figure, path, pdf)


def recall_against_frequency(
    results: Results, labels: list[str], path: Path, pdf: bool = False
) -> list[Path]:
    """Mean per-class test recall per method, the classes ordered from the rarest to the most
    frequent and named with their training counts: what re-balancing does to the rare
    classes. The legend sits outside the data."""
    classes = sorted(results.classes, key=lambda c: results.train_counts[c])
    figure = Figure(figsize=(max(6.0, 0.5 * len(classes) + 3), 4.5), layout="constrained")
    axis = figure.subplots()
    x = np.arange(len(classes))
    for label in labels:
        runs = results.of(label)
        recall = runs[[f"recall_{c}" for c in classes]].astype(float).mean()
        axis.plot(x, 100 * recall.to_numpy(), marker="o", label=label)
    names = [f"{c} ({results.train_counts[c]})" for c in classes]
    axis.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    axis.set_xlabel("class (training images), rarest first")
    axis.set_ylabel("test recall (%)")
    axis.set_ylim(-3, 103)
    axis.grid(axis="y", alpha=0.3)
    figure.legend(loc="outside right upper", fontsize=8)
    return save_figure(figure, path, pdf)


def confusion_matrices(
    results: Results, labels: list[str], path: Path, pdf: bool = False
) -> list[Path]:
    """Test confusion matrices normalised by true class (summed over seeds), side by side,
    classes ordered by training frequency."""
    names = results.classes
    figure = Figure(figsize=(3.6 * len(labels), 3.6))
    axes = figure.subplots(1, len(labels), squeeze=False)
    index = [results.class_index_order.index(c) for c in names]
    for axis, label in zip(axes[0], labels, strict=True):
        matrices = [
            np.asarray(results.metrics(r)["test"]["confusion_matrix"], dtype=float)
            for r in results.of(label)["run_id"]
        ]
        total = np.sum(matrices, axis=0)[np.ix_(index, index)]
        normalised = total / np.maximum(total.sum(axis=1, keepdims=True), 1)
        axis.imshow(normalised, vmin=0, vmax=1, cmap="Blues")
        for (i, j), value in np.ndenumerate(normalised):
            colour = "white" if value > 0.6 else "black"
            axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color=colour)
        axis.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        axis.set_yticks(range(len(names)), names, fontsize=7)
        axis.set_title(label, fontsize=9)
        axis.set_xlabel("predicted")
    axes[0][0].set_ylabel("true")
    return save_figure(figure, path, pdf)


def reliability_diagram(
    results: Results, labels: list[str], path: Path, pdf: bool = False
) -> list[Path]:
    """Accuracy against confidence in 15 equal-width bins, binned as the ECE is (test
    predictions of all seeds pooled); the diagonal is perfect calibration."""
    figure = Figure(figsize=(4.5, 4.5))
    axis = figure.subplots()
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    for label in labels:
        confidence, correct = [], []
        for run_id in results.of(label)["run_id"]:
            stored = results.predictions(run_id)
            probabilities = softmax(stored["test_logits"])
            confidence.append(probabilities.max(axis=1))
            correct.append(probabilities.argmax(axis=1) == stored["test_labels"])
        conf, hit = np.concatenate(confidence), np.concatenate(correct)
        bins = confidence_bins(conf, RELIABILITY_BINS)
        used = np.bincount(bins, minlength=RELIABILITY_BINS) > 0
        accuracy = np.bincount(bins, weights=hit, minlength=RELIABILITY_BINS)
        mean_conf = np.bincount(bins, weights=conf, minlength=RELIABILITY_BINS)
        size = np.maximum(np.bincount(bins, minlength=RELIABILITY_BINS), 1)
        axis.plot((mean_conf / size)[used], (accuracy / size)[used], marker="o", label=label)
    axis.set_xlabel("confidence")
    axis.set_ylabel("accuracy")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8)
    return save_figure(figure, path, pdf)


def stage1_embeddings(
    results: Results, path: Path, cache: ArtefactCache, pdf: bool = False
) -> tuple[list[Path], list[str]]:
    """t-SNE of stage-1 test features, one panel per stage-1 recipe among cross-entropy and
    the metric-learning ones (first seed of each), coloured by class. Returns the files and
    the stage-1 recipes left out because their artefact is no longer cached."""
    panels: dict[str, str] = {}  # stage-1 recipe -> the run whose artefact is drawn
    for label in results.labels:
        first = results.of(label).iloc[0]
        stage1 = str(first["method"]).split("+")[0]  # methods are named stage1[+stage2]
        if stage1 in panels or not (stage1 == "ce" or first["family"] == FAMILIES[2]):
            continue
        if "stage1" in results.record(first["run_id"]):
            panels[stage1] = str(first["run_id"])
    loaded, missing = {}, []
    for stage1, run_id in panels.items():
        artefact = cache.load(results.record(run_id)["stage1"]["key"])
        if artefact is None:
            missing.append(stage1)
        else:
            features = artefact.features["test"].float().numpy()
            loaded[stage1] = (features, results.predictions(run_id)["test_labels"])
    if not loaded:
        return [], missing
    figure = Figure(figsize=(4 * len(loaded) + 1, 4), layout="constrained")
    axes = figure.subplots(1, len(loaded), squeeze=False)
    names = results.class_index_order
    colours = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    rng = np.random.default_rng(0)
    for axis, (stage1, (features, true_class)) in zip(axes[0], loaded.items(), strict=True):
        keep = np.sort(
            np.concatenate(
                [
                    rng.permutation(np.flatnonzero(true_class == k))[:TSNE_POINTS_PER_CLASS]
                    for k in np.unique(true_class)
                ]
            )
        )
        points = TSNE(
            perplexity=min(30.0, (len(keep) - 1) / 3),
            init="pca",
            max_iter=TSNE_ITERATIONS,
            random_state=0,
        ).fit_transform(features[keep])
        for k, name in enumerate(names):
            chosen = true_class[keep] == k
            axis.scatter(*points[chosen].T, s=4, color=colours(k % colours.N), label=name)
        axis.set_title(f"stage 1: {stage1}", fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    handles, names_shown = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, names_shown, fontsize=7, markerscale=3, loc="outside right center")
    return save_figure(figure, path, pdf), missing
