"""Outlier runs: a run more than 10 points below its method's median is named, with its kept
stage-1 epoch, in the printed summary, summary.md and the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli.main import main
from bench.report.collect import Results
from bench.report.outliers import OUTLIER_GAP, find_outliers
from bench.report.summary import outlier_lines, printed_table
from bench.run import runner
from bench.run.runner import RunOutcome


def _run(method: str, data_seed: int, train_seed: int, bacc: float, **extra: object) -> dict:
    return {
        "run_id": f"{method}-d{data_seed}-s{train_seed}",
        "family": "two-stage",
        "method": method,
        "stage2_mode": "features",
        "variant": "v",
        "status": "done",
        "accuracy": 0.8,
        "balanced_accuracy": bacc,
        "macro_f1": 0.5,
        **{f"shot_{g}": 0.5 for g in ("many", "medium", "few")},
        "ece": 0.1,
        "recall_nv": 0.9,
        "data_seed": data_seed,
        "train_seed": train_seed,
        "kept_epoch": 1 + train_seed,
        "stage1_epochs": 18,
        **extra,
    }


def _runs() -> pd.DataFrame:
    """ce+crt: median 0.754 over five runs (two data seeds); one run 10.1 points below it
    (0.653), one 9.9 below (0.655). supcon+crt: 0.80 and 0.60, median (their mean) 0.70: the
    lower is exactly 10 points below, not more. focal: one run only. ldam-drw: one run exactly
    10 points below its median, a hair more in floating point. A failed ce+crt run has no
    balanced accuracy."""
    return pd.DataFrame(
        [
            _run("ce+crt", 0, 0, 0.754),
            _run("ce+crt", 0, 1, 0.653, kept_epoch=7),
            _run("ce+crt", 0, 2, 0.780),
            _run("ce+crt", 1, 0, 0.760),
            _run("ce+crt", 1, 1, 0.655),
            _run("ce+crt", 1, 2, None, status="failed"),
            _run("supcon+crt", 0, 0, 0.80),
            _run("supcon+crt", 0, 1, 0.60),
            _run("focal", 0, 0, 0.10),
            _run("ldam-drw", 0, 0, 0.55),
            _run("ldam-drw", 0, 1, 0.60),
            _run("ldam-drw", 0, 2, 0.45),  # 0.55 - 0.45 is 0.10000000000000003 in floats
        ]
    )


def test_flags_exactly_the_run_more_than_ten_points_below_its_methods_median() -> None:
    assert OUTLIER_GAP == 0.10  # a fraction, as balanced accuracy is stored in the runs table
    outliers = find_outliers(_runs())
    assert len(outliers) == 1  # not 9.9 below, not exactly 10 below, not a single run
    (row,) = outliers.to_dict("records")
    assert (row["method"], row["data_seed"], row["train_seed"]) == ("ce+crt", 0, 1)
    assert row["run_id"] == "ce+crt-d0-s1"
    assert row["kept_epoch"] == 7 and row["stage1_epochs"] == 18
    assert row["balanced_accuracy"] == pytest.approx(0.653)
    assert row["method_median"] == pytest.approx(0.754)  # of 0.653 0.655 0.754 0.760 0.780
    assert row["gap"] == pytest.approx(0.101)
    assert row["n_runs"] == 5  # the failed run is not one of them


def test_two_runs_are_compared_with_their_mean_and_one_run_never() -> None:
    runs = pd.DataFrame(
        [
            _run("supcon+crt", 0, 0, 0.80),
            _run("supcon+crt", 0, 1, 0.59),  # median 0.695: 10.5 below
            _run("focal", 0, 0, 0.10),
        ]
    )
    outliers = find_outliers(runs)
    assert list(outliers["run_id"]) == ["supcon+crt-d0-s1"]
    assert outliers["gap"].iloc[0] == pytest.approx(0.105)
    assert find_outliers(runs[runs["method"] == "focal"]).empty


def test_a_method_is_compared_within_its_own_variant_only() -> None:
    runs = pd.DataFrame(
        [_run("ce", 0, s, 0.70, variant="a") for s in range(3)]
        + [_run("ce", 0, s, 0.40, variant="b") for s in range(3)]
    )
    assert find_outliers(runs).empty  # 30 points below variant a, but level with its own


def test_a_table_without_finished_runs_has_no_outliers() -> None:
    failed = pd.DataFrame([{"run_id": "x", "method": "ce", "status": "failed"}])
    assert find_outliers(failed).empty
    assert find_outliers(pd.DataFrame()).empty


def _results(runs: pd.DataFrame) -> Results:
    """The done runs of `runs` as the report reads them (no files behind them)."""
    done = runs[runs["status"] == "done"].assign(label=lambda t: t["method"])
    done = done.reset_index(drop=True)
    return Results("toy", Path("toy"), done, list(dict.fromkeys(done["label"])), [], [], {}, [])


def test_the_printed_lines_name_the_outlier_run_and_its_kept_epoch() -> None:
    assert outlier_lines(_results(_runs())) == [
        "outlier: ce+crt data seed 0 train seed 1 (run ce+crt-d0-s1): BAcc 65.3, 10.1 below "
        "its method's median 75.4; stage 1 kept epoch 7 of 18"
    ]
    assert outlier_lines(_results(_runs().iloc[:1])) == []


def test_unknown_epoch_counts_are_left_out_of_the_line() -> None:
    runs = _runs().drop(columns="stage1_epochs")
    (line,) = outlier_lines(_results(runs))
    assert line.endswith("stage 1 kept epoch 7")
    runs["kept_epoch"] = np.nan  # records that lack it
    (line,) = outlier_lines(_results(runs))
    assert line.endswith("median 75.4")
    (line,) = outlier_lines(_results(runs.drop(columns="kept_epoch")))
    assert line.endswith("median 75.4")


def test_bench_run_prints_one_line_per_outlier_below_its_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = _runs()
    outcome = RunOutcome(_results(runs), (), len(runs))
    monkeypatch.setattr(runner, "run_benchmark", lambda *args, **kwargs: outcome)
    assert main(["run", "--methods", "ce+crt", "--dataset", "synthetic"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == (
        "outlier: ce+crt data seed 0 train seed 1 (run ce+crt-d0-s1): BAcc 65.3, 10.1 below "
        "its method's median 75.4; stage 1 kept epoch 7 of 18"
    )
    assert printed[:-1] == printed_table(_results(runs)).splitlines()
    assert printed[-2].startswith("| two-stage | ldam-drw |")  # the table's last row

    quiet = RunOutcome(_results(runs.iloc[:1]), (), 1)
    monkeypatch.setattr(runner, "run_benchmark", lambda *args, **kwargs: quiet)
    assert main(["run", "--methods", "ce+crt", "--dataset", "synthetic"]) == 0
    assert "outlier" not in capsys.readouterr().out
