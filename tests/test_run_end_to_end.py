"""`bench run` end to end on a tiny synthetic dataset, on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_tiny

from bench.cli.main import main
from bench.results.store import ResultsStore
from bench.run import work

pytestmark = pytest.mark.slow


def test_run_writes_every_file_and_a_summary(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    assert run_tiny(results, "ce,ldam-drw") == 0
    printed = capsys.readouterr().out
    assert "| one-stage | ce | – | 1 |" in printed and "| one-stage | ldam-drw | – | 1 |" in printed
    runs = sorted((results / "tiny" / "runs").iterdir())
    assert len(runs) == 2
    for folder in runs:
        record = json.loads((folder / "run.json").read_text())
        assert record["status"] == "done" and record["config"]["train_seed"] == 0
        assert record["config"]["training"]["epochs"] == 2
        assert Path(record["split_manifest"]).exists()
        # The default rule keeps the last epoch, and the record says which rule and schedule.
        assert record["kept_epoch"] == len(record["history"]) == 2
        assert record["stage1"]["checkpoint"] == "last"
        assert record["stage1"]["schedule"]["total_steps"] == 2 * 4  # 210 images, batch 64
        metrics = json.loads((folder / "metrics.json").read_text())
        assert 0 <= metrics["test"]["balanced_accuracy"] <= 1
        predictions = np.load(folder / "predictions.npz")
        assert predictions["test_logits"].shape == (len(predictions["test_labels"]), 7)
        assert metrics["test"]["accuracy"] == pytest.approx(
            float((predictions["test_logits"].argmax(1) == predictions["test_labels"]).mean())
        )
    table = pd.read_csv(results / "tiny" / "runs.csv")
    assert set(table["method"]) == {"ce", "ldam-drw"} and "recall_df" in table
    summary_md = (results / "tiny" / "summary.md").read_text()
    lines = summary_md.splitlines()
    (ce_row,) = [line for line in lines if line.startswith("| one-stage | ce | – |")]
    assert "±" not in ce_row  # one seed: no std
    assert sum(line.startswith("| ce | ") for line in lines) == 1  # the per-class table
    assert (results / "tiny" / "summary.csv").exists()
    # The run ends by refreshing the report of what it ran.
    main_md = (results / "tiny" / "report" / "main.md").read_text()
    assert "| one-stage | ce | – | 1 |" in main_md and "| one-stage | ldam-drw | – | 1 |" in main_md
    assert (results / "tiny" / "report" / "index.html").stat().st_size > 10_000


def test_rerun_skips_finished_runs_and_resumes_missing_ones(
    tiny_project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = tmp_path / "results"
    assert run_tiny(results, "ce,ldam-drw") == 0
    trained: list[str] = []
    real_evaluate = work.evaluate

    def counting_evaluate(method, *args, **kwargs):
        trained.append(method.name)
        return real_evaluate(method, *args, **kwargs)

    monkeypatch.setattr(work, "evaluate", counting_evaluate)
    capsys.readouterr()
    assert run_tiny(results, "ce,ldam-drw") == 0
    assert trained == [] and "2 already done, 0 to run" in capsys.readouterr().out
    # A crash mid-way leaves a run without its record: only that one is redone.
    ldam = next((results / "tiny" / "runs").glob("ldam-drw-*"))
    (ldam / "run.json").unlink()
    assert run_tiny(results, "ce,ldam-drw") == 0
    assert trained == ["ldam-drw"]
    assert len(pd.read_csv(results / "tiny" / "runs.csv")) == 2


def test_same_seeds_give_identical_metrics(tiny_project: Path, tmp_path: Path) -> None:
    metrics = []
    for name in ("a", "b"):
        assert run_tiny(tmp_path / name, "ce") == 0
        folder = next((tmp_path / name / "tiny" / "runs").iterdir())
        metrics.append(json.loads((folder / "metrics.json").read_text()))
    assert metrics[0] == metrics[1]


def test_overrides_are_recorded_and_change_the_run_id(tiny_project: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    assert run_tiny(results, "ce") == 0
    assert run_tiny(results, "ce", "--epochs", "1") == 0
    records = [json.loads(p.read_text()) for p in (results / "tiny" / "runs").glob("*/run.json")]
    assert len(records) == 2
    overridden = next(r for r in records if r["overrides"])
    assert overridden["overrides"] == {"epochs": 1}
    assert overridden["config"]["training"]["epochs"] == 1
    assert len({r["variant"] for r in records}) == 2


def test_the_checkpoint_rule_and_step_floor_are_settings_of_the_run(
    tiny_project: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    assert run_tiny(results, "ce,ce+crt", "--checkpoint", "smoothed", "--min-steps", "12") == 0
    records = [json.loads(p.read_text()) for p in (results / "tiny" / "runs").glob("*/run.json")]
    assert {r["config"]["training"]["checkpoint"] for r in records} == {"smoothed"}
    # 210 training images at batch 64 are 4 steps an epoch: 2 epochs stretch to 3 for 12 steps.
    assert {r["stage1"]["schedule"]["epochs"] for r in records} == {3}
    assert len({r["stage1"]["key"] for r in records}) == 1  # ce and ce+crt share stage 1
    assert run_tiny(results, "ce", "--checkpoint", "best") == 0
    ids = {p.name for p in (results / "tiny" / "runs").iterdir()}
    assert len(ids) == 3  # another rule is another run
    assert run_tiny(results, "ce", "--checkpoint", "peak") == 2


def test_failed_run_is_recorded_and_the_rest_go_on(
    tiny_project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real_evaluate = work.evaluate

    def failing_for_ce(method, *args, **kwargs):
        if method.name == "ce":
            raise RuntimeError("simulated divergence")
        return real_evaluate(method, *args, **kwargs)

    monkeypatch.setattr(work, "evaluate", failing_for_ce)
    results = tmp_path / "results"
    assert run_tiny(results, "ce,ldam-drw") == 1  # a run failed: not a success
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 of 2 run(s) failed" in err and "simulated divergence" in err
    table = pd.read_csv(results / "tiny" / "runs.csv").set_index("method")
    assert table.loc["ce", "status"] == "failed"
    assert "simulated divergence" in table.loc["ce", "error"]
    assert table.loc["ldam-drw", "status"] == "done"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", "--dataset", "tiny", "--methods", "focl"],
            "unknown method 'focl'. Did you mean 'focal'",
        ),
        (["run", "--dataset", "synthetc"], "unknown dataset 'synthetc'. Did you mean 'synthetic'"),
        (
            ["run", "--dataset", "tiny", "--backbone", "resnet19", "--methods", "ce"],
            "'backbone' = 'resnet19' is not one of resnet-compact",
        ),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(
    tiny_project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    (tiny_project / "datasets" / "synthetic.toml").write_text(
        (Path(__file__).parents[1] / "datasets" / "synthetic.toml").read_text()
    )
    code = main([*argv, "--results-dir", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_report_shows_the_runs_at_the_current_settings_unless_asked(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    assert run_tiny(results, "ce", "--no-report") == 0
    assert run_tiny(results, "ce", "--epochs", "1", "--no-report") == 0
    by_epochs = {
        json.loads(p.read_text())["config"]["training"]["epochs"]: json.loads(p.read_text())
        for p in (results / "tiny" / "runs").glob("*/run.json")
    }
    report = ["report", "--dataset", "tiny", "--results-dir", str(results)]

    def main_table(*extra: str) -> str:
        capsys.readouterr()
        assert main([*report, *extra]) == 0
        return (results / "tiny" / "report" / "main.md").read_text()

    default = main_table()
    assert "1 finished run(s) made at other settings (or before" in capsys.readouterr().out
    assert default.count("| ce |") == 1
    runs_csv = pd.read_csv(results / "tiny" / "report" / "main.csv")
    assert len(runs_csv) == 1
    # The summary written by `bench run` holds the runs at that run's settings alone.
    summary = (results / "tiny" / "summary.md").read_text()
    assert summary.count("| one-stage | ce |") == 1  # the main table
    assert summary.count("\n| ce | ") == 1  # the per-class table
    assert main_table("--epochs", "1").count("| ce |") == 1
    both = main_table("--all-settings")
    for record in by_epochs.values():
        assert f"ce [{record['variant']}]" in both


def test_diverged_training_is_recorded_as_failed_and_kept_out_of_tables(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    assert run_tiny(results, "ce,ce+crt", "--lr", "1000") == 1
    assert "2 of 2 run(s) failed" in capsys.readouterr().err
    table = pd.read_csv(results / "tiny" / "runs.csv")
    assert (table["status"] == "failed").all()
    assert table["error"].str.contains(r"stage 1 diverged in epoch \d+", regex=True).all()
    assert "balanced_accuracy" not in table  # no metrics were recorded for a diverged run
    summary = (results / "tiny" / "summary.md").read_text()
    assert "No finished run at these settings." in summary and "| ce" not in summary


def test_a_run_an_older_version_saved_as_done_although_it_diverged_counts_as_failed(
    tiny_project: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    assert run_tiny(results, "ce", "--no-report") == 0
    (folder,) = (results / "tiny" / "runs").iterdir()
    record = json.loads((folder / "run.json").read_text())
    record["history"][0]["train_loss"] = float("nan")
    (folder / "run.json").write_text(json.dumps(record))
    store = ResultsStore(results, "tiny")
    assert not store.is_done(folder.name)  # run again by the next `bench run`
    row = store.runs_table().iloc[0]
    assert row["status"] == "failed" and "diverged" in row["error"]
