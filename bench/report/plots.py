"""The report's figures; each function writes one figure and returns the paths written (PNG,
plus PDF when asked). Figures are built with matplotlib's object API (no pyplot, no display,
no global state)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from sklearn.manifold import TSNE

from bench.artefacts import ArtefactCache
from bench.metrics import confidence_bins, softmax
from bench.recipes import FAMILIES
from bench.report.collect import Results
from bench.report.tables import Table

FAMILY_COLOURS = dict(zip(FAMILIES, ("#4c72b0", "#dd8452", "#55a868"), strict=True))
RELIABILITY_BINS = 15
# t-SNE cost grows with points and iterations: 200 test images per class and 500 iterations
# keep a panel at seconds on a laptop CPU while still showing whether rare classes cluster.
TSNE_POINTS_PER_CLASS = 200
TSNE_ITERATIONS = 500


def _save(figure: Figure, path: Path, pdf: bool) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if figure.get_layout_engine() is None:
        figure.tight_layout()
    figure.savefig(path, dpi=130)
    written = [path]
    if pdf:
        figure.savefig(path.with_suffix(".pdf"))
        written.append(path.with_suffix(".pdf"))
    return written


def balanced_accuracy_bars(main: Table, path: Path, pdf: bool = False) -> list[Path]:
    """Mean test balanced accuracy per method, error bars one std over seeds, coloured by
    family."""
    numbers = main.numbers
    figure = Figure(figsize=(max(5.0, 0.45 * len(numbers) + 2), 4))
    axis = figure.subplots()
    x = np.arange(len(numbers))
    axis.bar(
        x,
        100 * numbers["balanced_accuracy_mean"],
        yerr=100 * numbers["balanced_accuracy_std"].fillna(0),
        color=[FAMILY_COLOURS[f] for f in numbers["family"]],
        capsize=3,
    )
    axis.set_xticks(x, numbers["method"], rotation=60, ha="right")
    axis.set_ylabel("balanced accuracy (%)")
    for family, colour in FAMILY_COLOURS.items():
        if family in set(numbers["family"]):
            axis.bar([0], [0], color=colour, label=family)
    axis.legend(fontsize=8)
    return _save(figure, path, pdf)


def recall_against_frequency(
    results: Results, labels: list[str], path: Path, pdf: bool = False
) -> list[Path]:
    """Mean per-class test recall against the class's training count (log axis), one line per
    method: what re-balancing does to the rare classes."""
    classes = results.classes[::-1]  # rarest first, left to right
    counts = np.array([results.train_counts[c] for c in classes])
    figure = Figure(figsize=(6, 4))
    axis = figure.subplots()
    for label in labels:
        runs = results.of(label)
        recall = runs[[f"recall_{c}" for c in classes]].astype(float).mean()
        axis.plot(counts, 100 * recall.to_numpy(), marker="o", label=label)
    for count, name in zip(counts, classes, strict=True):
        axis.annotate(name, (count, -4), rotation=90, ha="center", va="top", fontsize=7)
    axis.set_xscale("log")
    axis.set_xlabel("training images of the class (log)")
    axis.set_ylabel("test recall (%)")
    axis.set_ylim(-20, 105)
    axis.legend(fontsize=8)
    return _save(figure, path, pdf)


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
    return _save(figure, path, pdf)


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
    return _save(figure, path, pdf)


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
    return _save(figure, path, pdf), missing
