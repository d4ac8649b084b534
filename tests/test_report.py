"""`bench report` on a results folder the test writes: table contents checked against the runs
it holds, every figure written, and the HTML page rendered in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from bench.cli.main import main
from bench.components.metrics import classification_metrics
from bench.core.layout import cache_root
from bench.report import plots
from bench.report.build import build_report
from bench.report.collect import load_results
from bench.report.tables import main_table
from bench.results.store import ResultsStore
from bench.stage1.artefacts import ArtefactCache, Stage1Artefact

# Label-index order differs from alphabetical and from training-frequency order on purpose.
CLASSES = ("rare", "common", "middle")
TRAIN_COUNTS = np.array([5, 50, 20])
# method -> (family, stage-2 mode, stage-1 recipe, chance of a right prediction on test, on val,
# number of seeds). ce+lws wins on validation, ce+crt on test; focal (one seed) comes last.
METHODS = {
    "ce": ("one-stage", "", "ce", 0.55, 0.55, 3),
    "ce+crt": ("two-stage", "features", "ce", 0.85, 0.60, 3),
    "ce+lws": ("two-stage", "features", "ce", 0.65, 0.80, 3),
    "supcon+crt": ("two-stage + metric learning", "features", "supcon", 0.70, 0.70, 3),
    "focal": ("one-stage", "", "focal", 0.50, 0.50, 1),
}


def _labels_and_logits(accuracy: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), [10, 30, 20])
    right = rng.random(len(labels)) < accuracy
    predicted = np.where(right, labels, (labels + 1 + rng.integers(0, 2, len(labels))) % 3)
    logits = np.full((len(labels), 3), -1.0)
    logits[np.arange(len(labels)), predicted] = 1.0 + rng.random(len(labels))
    return labels, logits


def write_results(results: Path, ordinal: bool = False) -> dict[str, list[float]]:
    """The runs of METHODS written as `bench run` writes them (their stage-1 artefacts
    cached; kappa recorded when `ordinal`); returns each method's test balanced accuracy per
    seed."""
    store, cache, scores = ResultsStore(results, "toy"), ArtefactCache(cache_root()), {}
    for k, (method, (family, mode, stage1, accuracy, val, seeds)) in enumerate(METHODS.items()):
        scores[method] = []
        for seed in range(seeds):
            labels, logits = _labels_and_logits(accuracy, 100 * k + seed)
            val_labels, val_logits = _labels_and_logits(val, 100 * k + seed + 50)
            metrics = {
                "val": classification_metrics(
                    val_logits, val_labels, TRAIN_COUNTS, CLASSES, ordinal=ordinal
                ),
                "test": classification_metrics(
                    logits, labels, TRAIN_COUNTS, CLASSES, ordinal=ordinal
                ),
            }
            scores[method].append(metrics["test"]["balanced_accuracy"])
            key = f"{stage1}-{seed}"
            features = torch.from_numpy(
                labels[:, None] * 3.0 + np.random.default_rng(seed).normal(size=(60, 8))
            )
            cache.save(
                key,
                Stage1Artefact({}, {}, (torch.zeros(3), torch.ones(3)), {"test": features}, {}, 1),
                {"dataset": "toy", "stage1": stage1},
            )
            config = {
                "dataset": {"name": "toy", "classes": list(CLASSES)},
                "method": {"name": method, "family": family, "sampler": {"name": "instance"}}
                | ({"stage2": {"mode": mode}} if mode else {}),
                "split": {"data_seed": 0},
                "train_seed": seed,
            }
            record = {"run_id": f"{method}-s{seed}", "config": config, "setting": "x"}
            store.save_done(
                record | {"stage1": {"key": key}},
                metrics,
                {"test_logits": logits, "test_labels": labels},
            )
    return scores


def test_tables_hold_the_runs_numbers(tmp_path: Path) -> None:
    scores = write_results(tmp_path)
    report = build_report(load_results(tmp_path, "toy"), cache_dir=cache_root(), reference="ce+crt")
    main_csv = pd.read_csv(report.folder / "main.csv").set_index("method")
    for method, values in scores.items():
        assert main_csv.loc[method, "n_seeds"] == len(values)
        assert main_csv.loc[method, "balanced_accuracy_mean"] == pytest.approx(np.mean(values))
        if len(values) > 1:
            std = np.std(values, ddof=1)
            assert main_csv.loc[method, "balanced_accuracy_std"] == pytest.approx(std)
    main_md = (report.folder / "main.md").read_text().splitlines()
    best = max(scores, key=lambda m: np.mean(scores[m]))
    row = next(line for line in main_md if f"| {best} |" in line)
    mean, std = 100 * np.mean(scores[best]), 100 * np.std(scores[best], ddof=1)
    assert f"**{mean:.1f} ± {std:.1f}**" in row  # best BAcc in bold
    assert list(main_csv.index) == ["ce", "focal", "ce+crt", "ce+lws", "supcon+crt"]
    focal_row = next(line for line in main_md if "| focal |" in line)
    assert "| one-stage | focal | – | 1 | " in focal_row and "±" not in focal_row

    per_class = (report.folder / "per_class.md").read_text()
    assert "| Method | common (n=50) | middle (n=20) | rare (n=5) |" in per_class
    runs = [_labels_and_logits(0.55, seed) for seed in range(3)]  # ce's test predictions
    common = np.mean([(logits.argmax(1) == labels)[labels == 1].mean() for labels, logits in runs])
    ce_row = next(line for line in per_class.splitlines() if line.startswith("| ce |"))
    assert ce_row.split(" | ")[1].startswith(f"{100 * common:.1f} / ")

    significance = pd.read_csv(report.folder / "significance.csv").set_index("method")
    differences = np.array(scores["supcon+crt"]) - np.array(scores["ce+crt"])
    assert significance.loc["supcon+crt", "n_pairs"] == 3
    assert significance.loc["supcon+crt", "mean_difference"] == pytest.approx(differences.mean())
    assert significance.loc["supcon+crt", "wilcoxon_p_value"] == pytest.approx(
        stats.wilcoxon(differences, method="exact").pvalue
    )
    assert significance.loc["supcon+crt", "t_p_value"] == pytest.approx(
        stats.ttest_rel(scores["supcon+crt"], scores["ce+crt"]).pvalue
    )
    assert significance.loc["focal", "n_pairs"] == 1
    significance_md = (report.folder / "significance.md").read_text()
    assert "too few non-zero pairs (<6)" in significance_md
    assert "reference given on the command line" in significance_md
    # supcon+crt's lowest run is 8.9 points below its median (66.7): no outlier.
    assert "No outliers" in (report.folder / "outliers.md").read_text()
    assert "| Method |" not in (report.folder / "outliers.md").read_text()
    assert pd.read_csv(report.folder / "outliers.csv").empty
    tex = (report.folder / "main.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"$\pm$" in tex
    assert r"\begin{tabular}{lllrrrrrrrrrr}" in tex


def _runs_metric(results: Path, method: str, key: str) -> list[float]:
    store = ResultsStore(results, "toy")
    runs = [f"{method}-s{seed}" for seed in range(METHODS[method][5])]
    return [store.metrics(run_id)["test"][key] for run_id in runs]


def test_the_main_table_and_runs_csv_hold_auroc_auprc_and_kappa_where_recorded(
    tmp_path: Path,
) -> None:
    write_results(tmp_path)
    store = ResultsStore(tmp_path, "toy")
    runs = store.write_runs_csv().set_index("run_id")
    assert {"auroc", "auprc", "val_auroc", "val_auprc"} <= set(runs.columns)
    assert "qwk" not in runs.columns and "val_qwk" not in runs.columns  # not an ordinal task
    assert runs.loc["ce-s1", "auroc"] == store.metrics("ce-s1")["test"]["auroc"]
    assert runs.loc["ce-s1", "val_auprc"] == store.metrics("ce-s1")["val"]["auprc"]
    table = main_table(load_results(tmp_path, "toy"))
    assert table.header[4:] == [
        "Acc",
        "BAcc",
        "Macro-F1",
        "AUROC",
        "AUPRC",
        "Many",
        "Medium",
        "Few",
        "ECE",
    ]
    numbers = table.numbers.set_index("method")
    for method in METHODS:
        for key in ("auroc", "auprc"):
            assert numbers.loc[method, f"{key}_mean"] == pytest.approx(
                np.mean(_runs_metric(tmp_path, method, key))
            )
    values = 100 * np.array(_runs_metric(tmp_path, "ce+crt", "auroc"))
    (row,) = [row for row in table.rows if row[1] == "ce+crt"]
    assert row[7] == f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"

    ordinal = tmp_path / "ordinal"
    write_results(ordinal, ordinal=True)
    table = main_table(load_results(ordinal, "toy"))
    assert table.header[7:10] == ["AUROC", "AUPRC", "QWK"]  # kappa follows AUPRC
    assert "quadratic-weighted kappa" in table.caption
    numbers = table.numbers.set_index("method")
    assert numbers.loc["ce", "qwk_mean"] == pytest.approx(
        np.mean(_runs_metric(ordinal, "ce", "qwk"))
    )
    assert {"qwk", "val_qwk"} <= set(ResultsStore(ordinal, "toy").runs_table().columns)


def test_runs_recorded_before_the_ranking_metrics_show_a_dash(tmp_path: Path) -> None:
    write_results(tmp_path)
    store = ResultsStore(tmp_path, "toy")
    for run_id in ("ce-s0", "focal-s0"):  # one of ce's three runs, focal's only run
        path = store.run_dir(run_id) / "metrics.json"
        metrics = json.loads(path.read_text())
        for split in ("val", "test"):
            for key in ("auroc", "auprc", "auc_classes"):
                del metrics[split][key]
        path.write_text(json.dumps(metrics))
    runs = store.write_runs_csv().set_index("run_id")
    assert np.isnan(runs.loc["ce-s0", "auroc"]) and not np.isnan(runs.loc["ce-s1", "auroc"])
    table = main_table(load_results(tmp_path, "toy"))
    cells = {row[1]: row[7:9] for row in table.rows}
    assert cells["ce"] == cells["focal"] == ["–", "–"]  # ce: no mean of two runs of three
    assert "–" not in cells["ce+crt"]
    assert "recorded before the metric existed" in table.caption
    means = table.numbers["auroc_mean"]
    assert means.isna().sum() == 2 and (int(means.idxmax()), 7) in table.best
    assert not any(j == 7 and table.rows[i][1] in ("ce", "focal") for i, j in table.best)


def test_default_reference_is_chosen_on_validation(tmp_path: Path) -> None:
    write_results(tmp_path)
    report = build_report(load_results(tmp_path, "toy"), cache_dir=cache_root())
    significance = (report.folder / "significance.md").read_text()
    assert "## Against ce+lws" in significance  # best on validation; ce+crt is best on test
    assert "reference by validation balanced accuracy" in significance


@pytest.mark.slow
def test_every_figure_is_written_and_non_empty(tmp_path: Path) -> None:
    write_results(tmp_path)
    report = build_report(load_results(tmp_path, "toy"), cache_dir=cache_root(), pdf=True)
    for name in (
        "balanced_accuracy",
        "recall_vs_frequency",
        "confusion",
        "reliability",
        "embeddings",
    ):
        for suffix in (".png", ".pdf"):
            path = report.folder / f"{name}{suffix}"
            assert path.stat().st_size > 1000, path
    assert report.notes == []


def test_report_command_and_missing_artefacts_are_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_results(tmp_path)
    ArtefactCache(cache_root()).clear()
    assert main(["report", "--dataset", "toy", "--results-dir", str(tmp_path)]) == 0
    assert "note: embedding plot: stage-1 artefacts of ce, supcon" in capsys.readouterr().out
    report = build_report(
        load_results(tmp_path, "toy", ["ce", "ce+crt", "ldam-drw"]), cache_dir=cache_root()
    )
    assert not (report.folder / "embeddings.png").exists()
    assert any("no longer cached" in note for note in report.notes)
    assert any("no finished runs for ldam-drw" in note for note in report.notes)
    assert "supcon+crt" not in (report.folder / "main.md").read_text()


@pytest.mark.slow
def test_a_run_far_below_its_methods_median_is_listed_under_the_main_table(
    tmp_path: Path,
) -> None:
    scores = write_results(tmp_path)
    # A fourth ce+crt run (train seed 3) whose stage 1 kept epoch 2 of 5 and tests far lower.
    labels, logits = _labels_and_logits(0.30, 7)
    val_labels, val_logits = _labels_and_logits(0.30, 8)
    metrics = {
        "val": classification_metrics(val_logits, val_labels, TRAIN_COUNTS, CLASSES),
        "test": classification_metrics(logits, labels, TRAIN_COUNTS, CLASSES),
    }
    config = {
        "dataset": {"name": "toy", "classes": list(CLASSES)},
        "method": {
            "name": "ce+crt",
            "family": "two-stage",
            "sampler": {"name": "instance"},
            "stage2": {"mode": "features"},
        },
        "split": {"data_seed": 0},
        "train_seed": 3,
    }
    history = [{"epoch": e, "train_loss": 1.0, "val_balanced_accuracy": 0.3} for e in range(5)]
    ResultsStore(tmp_path, "toy").save_done(
        {"run_id": "ce+crt-s3", "config": config, "setting": "x", "kept_epoch": 2}
        | {"history": history, "stage1": {"key": "ce-0"}},
        metrics,
        {"test_logits": logits, "test_labels": labels},
    )
    low = metrics["test"]["balanced_accuracy"]
    median = float(np.median([*scores["ce+crt"], low]))  # mean of its two middle runs
    assert median - low > 0.10

    report = build_report(load_results(tmp_path, "toy"), cache_dir=cache_root(), reference="ce+crt")
    outliers = pd.read_csv(report.folder / "outliers.csv")
    assert list(outliers["run_id"]) == ["ce+crt-s3"]
    assert outliers["method"].iloc[0] == "ce+crt" and outliers["n_runs"].iloc[0] == 4
    assert outliers["method_median"].iloc[0] == pytest.approx(median)
    assert outliers["gap"].iloc[0] == pytest.approx(median - low)
    row = f"| ce+crt | ce+crt-s3 | 0 | 3 | {100 * low:.1f} | {100 * median:.1f} | "
    row += f"{100 * (median - low):.1f} | 2 of 5 |"
    assert row in (report.folder / "outliers.md").read_text()
    page = (report.folder / "index.html").read_text()
    assert page.index('id="main"') < page.index('id="outliers"') < page.index('id="per_class"')
    assert "<td>ce+crt-s3</td>" in page


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)"
)
def test_html_page_renders_every_image_in_headless_chromium(tmp_path: Path) -> None:
    write_results(tmp_path)
    report = build_report(load_results(tmp_path, "toy"), cache_dir=cache_root())
    page = (report.folder / "index.html").read_text()
    assert 'src="data:image/png;base64,' in page and "href=" not in page
    probe = page.replace(
        "</body>",
        "<script>window.addEventListener('load', () => { const images = [...document.images];"
        " const ok = images.filter(i => i.complete && i.naturalWidth > 0).length;"
        " const probe = `<pre id=probe>${ok}/${images.length}</pre>`;"
        " document.body.insertAdjacentHTML('beforeend', probe); });"
        "</script></body>",
    )
    (tmp_path / "probe.html").write_text(probe)
    shown = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=10000",
            "--dump-dom",
            (tmp_path / "probe.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    images = len(re.findall(r"<img ", page))
    assert images == 5
    assert f'<pre id="probe">{images}/{images}</pre>' in shown


def test_balanced_accuracy_is_drawn_with_95_percent_intervals_on_an_axis_spanning_the_data() -> (
    None
):
    mean, low, high = plots.mean_interval(np.array([1.0, 2.0, 3.0]))
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, 2 dof) × standard error (std 1)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert plots.mean_interval(np.array([7.0])) == (7.0, 7.0, 7.0)  # one seed: no interval
    assert plots.data_span([60.0, 62.5], [61.0, 64.0]) == (59.0, 65.0)  # not 0 to 100
    assert plots.data_span([10.0], [90.0]) == pytest.approx((6.0, 94.0))
