"""`bench compare`: ranks, Friedman/Nemenyi and the critical difference checked against
hand-computed values and Demšar's table, the Bayesian signed-rank decisions, and the whole
command on results folders of two tiny datasets, its page rendered in headless Chromium."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli.main import main
from bench.compare.build import analyse, metric_pairs, tables, verdict
from bench.compare.collect import DatasetScores, finished_runs, results_archives, scores_of
from bench.compare.stats import critical_difference, friedman, mean_ranks, signed_rank
from bench.recipes.methods import REPRESENTATION_APPROACHES, MethodRegistry
from bench.report.page import block_html


def test_ranks_and_friedman_match_hand_computed_values() -> None:
    columns = {
        "a": [80.0, 70.0, 60.0, 90.0],
        "b": [75.0, 72.0, 55.0, 85.0],
        "c": [70.0, 72.0, 50.0, 80.0],
    }
    scores = pd.DataFrame(columns, index=["d1", "d2", "d3", "d4"])
    ranks = mean_ranks(scores)
    assert ranks.loc["d2"].tolist() == [3.0, 1.5, 1.5]  # a tie shares its ranks
    assert ranks.loc["mean rank"].tolist() == pytest.approx([1.5, 1.875, 2.625])
    # Friedman's chi-square, 12N/(k(k+1)) [sum R_j^2 - k(k+1)^2/4] (Demšar 2006, eq. 1);
    # scipy divides it by the tie correction 1 - sum(t^3 - t) / (N k (k^2 - 1)).
    result = friedman(scores)
    assert result.p_value is not None and 0 < result.p_value < 1
    assert result.nemenyi is not None and result.nemenyi.shape == (3, 3)
    # Labelled by method: a and c differ most in mean rank, so their p-value is the smallest.
    assert result.nemenyi.loc["a", "c"] < result.nemenyi.loc["a", "b"]
    n, k, r = 4, 3, np.array([1.5, 1.875, 2.625])
    untied = 12 * n / (k * (k + 1)) * ((r**2).sum() - k * (k + 1) ** 2 / 4)
    ties = 1 - (2**3 - 2) / (n * k * (k**2 - 1))  # d2's pair of tied ranks
    assert result.statistic == pytest.approx(untied / ties)
    assert friedman(scores[["a", "b"]]).p_value is None  # two methods: no test


def test_the_critical_difference_follows_demsars_table() -> None:
    # Demšar (JMLR 2006), table 5(a): q_0.05 = 2.569 for k = 4 and 2.728 for k = 5.
    assert critical_difference(4, 14) == pytest.approx(2.569 * math.sqrt(20 / 84), abs=2e-3)
    assert critical_difference(5, 10) == pytest.approx(2.728 * math.sqrt(30 / 60), abs=2e-3)


def test_the_signed_rank_test_decides_only_on_clear_evidence() -> None:
    base = np.array([70.0, 72.0, 68.0, 75.0, 71.0, 69.0, 74.0, 73.0])
    better = signed_rank(base + 5 + 0.1 * np.arange(8), base, rope=1.0)
    assert better.better > 0.99 and better.decision() == "better"
    assert better.mean_difference == pytest.approx(5.35)
    same = signed_rank(base + 0.05 * np.sin(np.arange(8)), base, rope=1.0)
    assert same.equivalent > 0.95 and same.decision() == "equivalent"
    worse = signed_rank(base - 4 - 0.1 * np.arange(8), base, rope=1.0)
    assert worse.decision() == "worse"
    few = signed_rank(base[:3] + 5, base[:3], rope=1.0)  # 3 blocks: never a decision
    assert few.decision() == "undecided"


def test_a_metric_where_lower_is_better_ranks_and_decides_the_other_way() -> None:
    scores = pd.DataFrame({"a": [2.0, 3.0], "b": [5.0, 4.0]}, index=["d1", "d2"])
    assert mean_ranks(scores, higher_is_better=False).loc["mean rank"].tolist() == [1.0, 2.0]
    assert mean_ranks(scores).loc["mean rank"].tolist() == [2.0, 1.0]
    base = np.array([10.0, 12.0, 9.0, 11.0, 10.5, 9.5])
    lower = base - 4 - 0.1 * np.arange(6)  # an ECE four points lower
    higher_better = signed_rank(lower, base, rope=1.0)
    lower_better = signed_rank(lower, base, rope=1.0, higher_is_better=False)
    assert higher_better.decision() == "worse" and lower_better.decision() == "better"
    assert lower_better.better == higher_better.worse
    assert lower_better.mean_difference == higher_better.mean_difference < 0


def test_metric_learning_methods_are_paired_with_the_same_stage2_on_cross_entropy() -> None:
    registry = MethodRegistry()
    methods = ["ce", "ce+crt", "ce+lws", "supcon+crt", "supcon+lws", "triplet+crt", "rs-cb"]
    assert metric_pairs(methods, registry) == [
        ("supcon+crt", "ce+crt"),
        ("supcon+lws", "ce+lws"),
        ("triplet+crt", "ce+crt"),
    ]
    assert metric_pairs(["supcon+tau", "ce+crt"], registry) == []  # no ce+tau to pair with


def test_every_representation_learner_is_paired_and_ordered_by_its_approach() -> None:
    registry = MethodRegistry()
    methods = ["ce+crt", "ce+lws", "simclr+lws", "mixup+crt", "kcl+crt", "supcon+crt"]
    methods += ["gcl+crt", "ce+disalign", "bcl+lws"]  # re-weighting and stage 2: not learners
    pairs = metric_pairs(methods, registry)
    assert pairs == [
        ("mixup+crt", "ce+crt"),
        ("supcon+crt", "ce+crt"),
        ("kcl+crt", "ce+crt"),
        ("bcl+lws", "ce+lws"),
        ("simclr+lws", "ce+lws"),
    ]
    approaches = [registry.get(method).approach for method, _ in pairs]
    assert approaches == [
        "augmentation",
        "supervised metric learning",
        "long-tailed contrastive",
        "long-tailed contrastive",
        "self-supervised",
    ]
    assert registry.get("ce+disalign").approach == "decoupled stage 2"
    assert registry.get("gcl+crt").approach == "loss re-weighting"


def test_the_verdict_reports_each_approach_apart() -> None:
    index = pd.MultiIndex.from_product([range(5), range(2)], names=["split", "train_seed"])
    base = 60 + np.random.default_rng(0).normal(0, 2, len(index))
    blocks = pd.DataFrame(
        {"ce+crt": base, "supcon+crt": base + 5.0, "kcl+crt": base - 5.0}, index=index
    )
    comparison = analyse([DatasetScores("a", blocks, test_sets=5)], MethodRegistry(), rope=1.0)
    text = verdict(comparison)
    # A list item per approach, its decisions nested under it.
    metric = text.index("\n- Supervised metric learning: 0 of its 1 (pair, dataset) tests")
    contrastive = text.index("\n- Long-tailed contrastive: 0 of its 1 (pair, dataset) tests")
    assert metric < contrastive
    better = "\n    - Better than cross-entropy under the same stage 2: supcon+crt on a (+5.0"
    assert better in text[metric:contrastive]
    assert "\n    - Worse than it: kcl+crt on a (-5.0 points" in text[contrastive:]
    html = block_html(text.split("\n\n")[2])
    assert html.startswith("<ul><li>Supervised metric learning: 0 of its 1")
    assert html.count("<ul>") == 3 and html.count("<li>") == 2 + 2 * 3
    (pairs,) = [t for t in tables(comparison) if t.name == "pairs"]
    assert [row[:3] for row in pairs.rows] == [
        ["supervised metric learning", "supcon+crt", "ce+crt"],
        ["long-tailed contrastive", "kcl+crt", "ce+crt"],
    ]


def _compare(tiny_project: Path, results: Path, *extra: str) -> int:
    """Runs of ce, ce+crt and supcon+crt at data seeds 0-2 on `tiny` and a second tiny set
    (`other`, declared an ordinal task), then `bench compare` over both."""
    spec = (tiny_project / "datasets" / "tiny.toml").read_text()
    other = spec.replace("seed = 0", "seed = 1") + "\n[metrics]\nordinal = true\n"
    (tiny_project / "datasets" / "other.toml").write_text(other)
    for dataset in ("tiny", "other"):
        argv = ["run", "--dataset", dataset, "--methods", "ce,ce+crt,supcon+crt"]
        argv += ["--data-seeds", "0-2", "--seeds", "0", "--results-dir", str(results)]
        assert main([*argv, "--device", "cpu", "--no-progress", "--no-report"]) == 0
    return main(["compare", "--datasets", "tiny,other", "--results-dir", str(results), *extra])


@pytest.mark.slow
def test_compare_over_two_datasets_writes_tables_figures_and_a_verdict(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    assert _compare(tiny_project, results, "--pdf") == 0
    out = capsys.readouterr().out
    assert "(tiny 3 split(s), other 3 split(s))" in out
    assert "2 of its 2 (pair, dataset) tests undecided" in out  # 3 splits decide nothing
    folder = results / "compare"
    for name in ("ranks", "pairs"):
        for suffix in (".md", ".csv", ".tex"):
            assert (folder / f"{name}{suffix}").stat().st_size > 100
    for figure in ("cd_diagram", "pairs"):
        assert (folder / f"{figure}.png").exists() and (folder / f"{figure}.pdf").exists()
    # The ranks table's numbers are the means of each dataset's runs.
    runs = pd.read_csv(results / "tiny" / "runs.csv")
    ranks = pd.read_csv(folder / "ranks.csv").set_index("method")
    for method in ("ce", "ce+crt", "supcon+crt"):
        expected = 100 * runs.loc[runs["method"] == method, "balanced_accuracy"].mean()
        assert ranks.loc[method, "tiny_bacc"] == pytest.approx(expected)
    pairs = pd.read_csv(folder / "pairs.csv")
    assert set(pairs["dataset"]) == {"tiny", "other", "pooled"}
    assert (pairs["p_better"] + pairs["p_equivalent"] + pairs["p_worse"]).round(6).eq(1).all()
    assert "too few datasets to decide" in (folder / "verdict.md").read_text()  # 2 datasets
    records = [json.loads(f.read_text()) for f in (results / "tiny" / "runs").glob("*/run.json")]
    hashes = {r["config"]["split"]["data_seed"]: r["config"]["split"]["hash"] for r in records}
    # Splits that share a test set (a source fixing it) are counted and said as such.
    manifests = {
        seed: results / "tiny" / "splits" / f"split-{h}.json" for seed, h in hashes.items()
    }
    test_items = json.loads(manifests[0].read_text())["items"]["test"]
    shared = json.loads(manifests[1].read_text())
    shared["items"]["test"] = test_items
    manifests[1].write_text(json.dumps(shared))
    [tiny] = scores_of(
        results_archives(results, finished_runs(results, ["tiny"], MethodRegistry())), None
    )
    assert (tiny.splits, tiny.test_sets) == (3, 2)
    assert tiny.described() == "3 split(s) sharing 2 test set(s)"
    # Data seeds that draw the same split (a source fixing its own) are one split, not two.
    for path in (results / "tiny" / "runs").glob("*/run.json"):
        record = json.loads(path.read_text())
        if record["config"]["split"]["data_seed"] == 2:
            record["config"]["split"]["hash"] = hashes[1]
            path.write_text(json.dumps(record))
    [tiny] = scores_of(
        results_archives(results, finished_runs(results, ["tiny"], MethodRegistry())), None
    )
    assert tiny.splits == 2 and len(tiny.blocks) == 2  # seeds 1 and 2 averaged as one split
    # A method missing on one dataset is a one-line error naming it.
    argv = ["compare", "--datasets", "tiny,other", "--results-dir", str(results)]
    assert main([*argv, "--methods", "ce,ldam-drw"]) == 2
    assert "no finished runs of ldam-drw" in capsys.readouterr().err

    # Ranked and tested on macro AUROC: the table holds each dataset's mean AUROC x 100.
    assert main([*argv, "--metric", "auroc"]) == 0
    assert "cross-entropy under the same stage 2 in test macro AUROC" in capsys.readouterr().out
    ranks = pd.read_csv(folder / "ranks.csv").set_index("method")
    runs = pd.read_csv(results / "other" / "runs.csv")
    for method in ("ce", "ce+crt", "supcon+crt"):
        expected = 100 * runs.loc[runs["method"] == method, "auroc"].mean()
        assert ranks.loc[method, "other_auroc"] == pytest.approx(expected)
    assert "equivalence of ±1 AUROC points" in (folder / "pairs.md").read_text()
    # Kappa exists only for ordinal tasks: other declares one, tiny does not.
    assert main([*argv, "--metric", "qwk"]) == 2
    assert "tiny: qwk is recorded only for ordinal tasks" in capsys.readouterr().err
    assert {"qwk", "val_qwk"} <= set(runs.columns)
    assert "qwk" not in pd.read_csv(results / "tiny" / "runs.csv").columns
    alone = ["compare", "--datasets", "other", "--results-dir", str(results)]
    assert main([*alone, "--metric", "qwk"]) == 0
    ranks = pd.read_csv(folder / "ranks.csv").set_index("method")
    expected = 100 * runs.loc[runs["method"] == "ce", "qwk"].mean()
    assert ranks.loc["ce", "other_qwk"] == pytest.approx(expected)
    # A run recorded before AUROC existed: compare names its method and refuses.
    path = next((results / "other" / "runs").glob("ce+crt-*/metrics.json"))
    metrics = json.loads(path.read_text())
    del metrics["test"]["auroc"]
    path.write_text(json.dumps(metrics))
    assert main([*argv, "--metric", "auroc"]) == 2
    err = capsys.readouterr().err
    assert "other: no test auroc in 1 run(s) (ce+crt 1 of 3)" in err and len(err.splitlines()) == 1
    assert main([*argv, "--metric", "auprc"]) == 0  # the other metrics are still there


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)"
)
def test_the_comparison_page_renders_every_image_in_headless_chromium(
    tiny_project: Path, tmp_path: Path
) -> None:
    assert _compare(tiny_project, tmp_path / "results") == 0
    page = (tmp_path / "results" / "compare" / "index.html").read_text()
    assert 'src="data:image/png;base64,' in page and "href=" not in page
    probe = page.replace(
        "</body>",
        "<script>window.addEventListener('load', () => { const images = [...document.images];"
        " const ok = images.filter(i => i.complete && i.naturalWidth > 0).length;"
        " document.body.insertAdjacentHTML('beforeend', `<pre id=probe>${ok}/${images.length}"
        "</pre>`); });</script></body>",
    )
    (tmp_path / "probe.html").write_text(probe)
    shown = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--virtual-time-budget=10000", "--dump-dom", (tmp_path / "probe.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert len(re.findall(r"<img ", page)) == 2 and '<pre id="probe">2/2</pre>' in shown


def test_the_paper_and_contenders_lists_pair_every_learner_of_all_with_crt_and_lws() -> None:
    registry = MethodRegistry()
    curated = {name.split("+")[0] for name in registry.lists["all"]}
    learners = {
        name
        for name, recipe in registry.stage1.items()
        if recipe.approach in REPRESENTATION_APPROACHES and name in curated
    }
    metric = {n for n in learners if registry.stage1[n].approach == "supervised metric learning"}
    pairs = metric_pairs(registry.lists["paper"], registry)
    assert {method for method, _ in pairs} == {f"{m}+{s}" for m in metric for s in ("crt", "lws")}
    assert {"ce", "rs-cb", "ldam-drw", "balanced-softmax"} <= set(registry.lists["paper"])
    contenders = {method for method, _ in metric_pairs(registry.lists["contenders"], registry)}
    assert contenders == {f"{m}+{s}" for m in learners for s in ("crt", "lws")}
    assert learners >= {"supcon", "kcl", "bcl", "paco", "simclr", "mixup"}
    assert set(registry.lists["paper"]) <= set(registry.lists["contenders"])
    assert set(registry.lists["contenders"]) <= set(registry.lists["all"])


def _scores(name: str, gain: float) -> DatasetScores:
    """5 splits × 2 train seeds of ce, ce+crt and supcon+crt, supcon+crt `gain` points up."""
    rng = np.random.default_rng(len(name))
    index = pd.MultiIndex.from_product([range(5), range(2)], names=["split", "train_seed"])
    base = 60 + rng.normal(0, 2, len(index))
    blocks = pd.DataFrame(
        {
            "ce": base - 5,
            "ce+crt": base,
            "supcon+crt": base + gain + rng.normal(0, 0.05, len(index)),
        },
        index=index,
    )
    return DatasetScores(name, blocks, test_sets=5)


@pytest.mark.slow
def test_a_verdict_counts_splits_not_train_seeds_and_says_what_each_dataset_shows() -> None:
    comparison = analyse([_scores("a", 5.0), _scores("bb", 0.0)], MethodRegistry(), rope=1.0)
    [pair] = comparison.pairs
    assert (pair.method, pair.baseline) == ("supcon+crt", "ce+crt")
    a, bb = pair.per_dataset["a"], pair.per_dataset["bb"]
    assert a is not None and bb is not None
    assert a.observations == 5  # two train seeds per split are one observation
    assert a.decision() == "better" and bb.decision() == "equivalent"
    text = verdict(comparison)
    assert "Better than cross-entropy under the same stage 2: supcon+crt on a (+5.0 points" in text
    assert "Practically equivalent to it: supcon+crt on bb (" in text
    assert "Worse than it: none." in text and "0 of its 2 (pair, dataset) tests undecided." in text
    assert "2 per-dataset mean differences (a, bb), too few datasets to decide" in text
    assert "share a test set" not in text
    fixed = DatasetScores("bb", _scores("bb", 0.0).blocks, test_sets=1)
    text = verdict(analyse([_scores("a", 5.0), fixed], MethodRegistry(), rope=1.0))
    assert "bb 5 split(s) sharing 1 test set(s)" in text
    assert "The splits of bb share a test set" in text
    # In ECE (lower is better), supcon+crt 5 points up is worse, and ranks last.
    ece = [dataclasses.replace(_scores(name, 5.0), metric="ece") for name in ("a", "bb")]
    comparison = analyse(ece, MethodRegistry(), rope=1.0)
    assert comparison.pairs[0].per_dataset["a"].decision() == "worse"  # type: ignore[union-attr]
    assert comparison.ranks.loc["mean rank"].idxmax() == "supcon+crt"
    text = verdict(comparison)
    assert "in test expected calibration error" in text and "±1 ECE points" in text
    assert "Worse than it: supcon+crt on a (+5.0 points" in text
    rank_table = tables(comparison)[0]
    assert rank_table.header[1] == "a ECE" and "lower is better" in rank_table.caption
