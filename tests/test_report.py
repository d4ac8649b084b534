"""`bench report` on a results folder the test writes: table contents checked against the runs
it holds, every figure written, and the HTML page rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from bench.artefacts import ArtefactCache, Stage1Artefact
from bench.cli import main
from bench.metrics import classification_metrics
from bench.report.build import build_report
from bench.store import ResultsStore

CLASSES = ("common", "middle", "rare")
TRAIN_COUNTS = np.array([50, 20, 5])
# method -> (family, stage-2 mode, stage-1 recipe, probability of a correct test prediction)
METHODS = {
    "ce": ("one-stage", "", "ce", 0.55),
    "ce+crt": ("two-stage", "features", "ce", 0.75),
    "supcon+crt": ("two-stage + metric learning", "features", "supcon", 0.70),
}


def _labels_and_logits(accuracy: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), [30, 20, 10])
    right = rng.random(len(labels)) < accuracy
    predicted = np.where(right, labels, (labels + 1 + rng.integers(0, 2, len(labels))) % 3)
    logits = np.full((len(labels), 3), -1.0)
    logits[np.arange(len(labels)), predicted] = 1.0 + rng.random(len(labels))
    return labels, logits


def write_results(results: Path, seeds: tuple[int, ...] = (0, 1, 2)) -> dict[str, list[float]]:
    """Runs of three methods over `seeds` written as `bench run` writes them (their stage-1
    artefacts cached); returns each method's test balanced accuracy per seed."""
    store, cache, scores = ResultsStore(results, "toy"), ArtefactCache(), {}
    for k, (method, (family, mode, stage1, accuracy)) in enumerate(METHODS.items()):
        scores[method] = []
        for seed in seeds:
            labels, logits = _labels_and_logits(accuracy, 100 * k + seed)
            metrics = {
                split: classification_metrics(logits, labels, TRAIN_COUNTS, CLASSES)
                for split in ("val", "test")
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
    report = build_report(tmp_path, "toy", reference="ce+crt")
    main_csv = pd.read_csv(report.folder / "main.csv").set_index("method")
    for method, values in scores.items():
        assert main_csv.loc[method, "n_seeds"] == 3
        assert main_csv.loc[method, "balanced_accuracy_mean"] == pytest.approx(np.mean(values))
        assert main_csv.loc[method, "balanced_accuracy_std"] == pytest.approx(
            np.std(values, ddof=1)
        )
    best = max(scores, key=lambda m: np.mean(scores[m]))
    row = next(
        line
        for line in (report.folder / "main.md").read_text().splitlines()
        if f"| {best} |" in line
    )
    mean, std = 100 * np.mean(scores[best]), 100 * np.std(scores[best], ddof=1)
    assert f"**{mean:.1f} ± {std:.1f}**" in row  # best BAcc in bold
    assert list(main_csv.index) == ["ce", "ce+crt", "supcon+crt"]  # grouped by family

    per_class = (report.folder / "per_class.md").read_text()
    assert "| Method | common (n=50) | middle (n=20) | rare (n=5) |" in per_class

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
    assert "too few seeds (<6)" in (report.folder / "significance.md").read_text()
    tex = (report.folder / "main.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"$\pm$" in tex


def test_default_reference_is_chosen_on_validation(tmp_path: Path) -> None:
    write_results(tmp_path)
    report = build_report(tmp_path, "toy")
    assert "## Against ce+crt" in (report.folder / "significance.md").read_text()


def test_every_figure_is_written_and_non_empty(tmp_path: Path) -> None:
    write_results(tmp_path)
    report = build_report(tmp_path, "toy", pdf=True)
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
    ArtefactCache().clear()
    assert main(["report", "--dataset", "toy", "--results-dir", str(tmp_path)]) == 0
    assert "note: embedding plot: stage-1 artefacts of ce, supcon" in capsys.readouterr().out
    report = build_report(tmp_path, "toy", methods=["ce", "ce+crt", "ldam-drw"])
    assert not (report.folder / "embeddings.png").exists()
    assert any("no longer cached" in note for note in report.notes)
    assert any("no finished runs for ldam-drw" in note for note in report.notes)
    assert "supcon+crt" not in (report.folder / "main.md").read_text()


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)"
)
def test_html_page_renders_every_image_in_headless_chromium(tmp_path: Path) -> None:
    write_results(tmp_path)
    report = build_report(tmp_path, "toy")
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
