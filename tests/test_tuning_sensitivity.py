"""A study's tuning sensitivity: its `[tuning]` table checked field by field, the variants it
adds to one dataset's runs, each split's choice made on validation (never test), and a tiny
study whose page says how the decisions change, again from its archive alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli.main import main
from bench.compare.build import analyse
from bench.compare.collect import scores_of
from bench.compare.tuning import (
    Sensitivity,
    TuningAsked,
    choose,
    missing_variants,
    section,
    sensitivity_section,
)
from bench.core.errors import BenchError
from bench.recipes.methods import MethodRegistry
from bench.results.archive import DatasetArchive
from bench.study.file import load_study
from bench.study.grid import cells

STUDY = """
methods = ["ce", "ce+crt", "supcon+crt"]
data_seeds = [0, 1, 2]
train_seeds = [0]

[[datasets]]
name = "tiny"
epochs = 1
pooled = true

[tuning]
dataset = "tiny"

[tuning.grids]
"ce+crt" = { "stage2.lr" = [0.016, 0.05] }
"supcon+crt" = { "metric.weight" = [0.3, 1.0] }
"""
LR = "ce+crt[stage2.lr=0.016]"
WEIGHT = "supcon[metric.weight=0.3]+crt"


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tuned-study.toml").write_text(text)
    return folder / "tuned-study.toml"


def test_the_tuning_dataset_runs_each_grids_variants_beside_the_methods(
    tiny_project: Path,
) -> None:
    study = load_study(_write(tiny_project / "studies", STUDY))
    registry = MethodRegistry()
    assert study.tuning is not None
    assert study.tuning.variants(registry) == {
        "ce+crt": [LR, "ce+crt"],
        "supcon+crt": [WEIGHT, "supcon+crt"],
    }
    names = [m.name for m in study.methods_on(study.datasets[0], registry)]
    assert names == ["ce", "ce+crt", "supcon+crt", LR, WEIGHT]
    assert len(cells(study, study.datasets[0], registry)) == 5 * 3


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (('dataset = "tiny"', 'dataset = "skin"'), "dataset 'skin' is not the study's (tiny)"),
        (('"ce+crt" = {', '"ce+lws" = {'), "'ce+lws' is not one of the study's methods"),
        (("[0.3, 1.0]", "[0.3, 0.3]"), "make the same variant"),
        (("[0.3, 1.0]", "[3, 3.0]"), "make the same variant"),
        (("[0.3, 1.0]", "[]"), "needs a non-empty list of values"),
        (("[0.3, 1.0]", "[-1.0]"), "out of range"),
        (('"metric.weight"', '"metric.wieght"'), "'wieght' is not a parameter"),
        (('dataset = "tiny"', ""), "[tuning] needs a dataset"),
    ],
)
def test_a_wrong_tuning_table_is_one_error_naming_the_file(
    tiny_project: Path, change: tuple[str, str], says: str
) -> None:
    path = _write(tiny_project / "studies", STUDY.replace(*change))
    with pytest.raises(BenchError) as raised:
        load_study(path)
    assert str(path) in str(raised.value) and says in str(raised.value)


def _archive() -> DatasetArchive:
    """Three splits with their own test sets; on split s0 the variant that validation prefers
    is the worse one on test, so a choice made on test would differ."""
    # (split, method): (validation, test) balanced accuracy
    scores = {
        ("s0", "ce+crt"): (0.50, 0.60), ("s0", LR): (0.55, 0.40),
        ("s1", "ce+crt"): (0.60, 0.50), ("s1", LR): (0.40, 0.70),
        ("s2", "ce+crt"): (0.50, 0.50), ("s2", LR): (0.50, 0.30),  # a tie: grid order wins
        ("s0", "ce"): (0.4, 0.4), ("s1", "ce"): (0.4, 0.4), ("s2", "ce"): (0.4, 0.4),
    }  # fmt: skip
    rows = [
        {"run_id": f"{method}-{split}", "dataset": "d", "method": method, "settings_id": "x",
         "data_seed": int(split[1]), "train_seed": 0, "split_hash": split,
         "test_digest": f"t{split}", "balanced_accuracy": test,
         "val_balanced_accuracy": validation}
        for (split, method), (validation, test) in scores.items()
    ]  # fmt: skip
    runs = pd.DataFrame(rows)
    predicted = {row["run_id"]: np.full(4, k, np.int16) for k, row in enumerate(rows)}
    labels = {f"t{s}": np.zeros(4, np.int16) for s in ("s0", "s1", "s2")}
    return DatasetArchive(runs, predicted, labels)


def test_each_split_takes_the_variant_validation_prefers_never_the_test_best() -> None:
    archive = _archive()
    grids = {"ce+crt": [LR, "ce+crt"]}
    as_run, tuned, chosen, variants = choose(
        "d", archive, ["ce", "ce+crt"], grids, "balanced_accuracy", True
    )
    assert list(chosen["ce+crt"]) == [LR, "ce+crt", LR]
    assert list(tuned.blocks["ce+crt"]) == pytest.approx([40.0, 50.0, 30.0])
    assert list(as_run.blocks["ce+crt"]) == pytest.approx([60.0, 50.0, 50.0])
    assert list(tuned.blocks["ce"]) == list(as_run.blocks["ce"])
    assert tuned.predicted is not None and as_run.predicted is not None
    lr_run = archive.runs.index[archive.runs["run_id"] == f"{LR}-s0"][0]
    assert (tuned.predicted[("s0", 0, "ce+crt")] == lr_run).all()  # the chosen run's labels
    assert {key[2] for key in tuned.predicted} == {"ce", "ce+crt"}
    assert variants.set_index("variant")["chosen"].to_dict() == {LR: 2, "ce+crt": 1}
    assert variants.set_index("variant").loc[LR, "validation"] == pytest.approx(145 / 3)


@pytest.mark.slow
def test_a_tuned_study_says_how_its_decisions_change_from_its_archive_alone(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], one_thread: None
) -> None:
    path = _write(tiny_project / "studies", STUDY)
    results = tmp_path / "results"
    place = ["--results-dir", str(results)]
    assert main(["study", "status", str(path), *place]) == 0
    out = capsys.readouterr().out
    assert "tuning 2 of them on tiny" in out
    assert "tiny: 0 of 15 run(s) done, 15 missing, 9 stage-1 training(s) to do" in out
    run = ["study", "run", str(path), *place, "--device", "cpu", "--no-progress", "--export"]
    assert main(run) == 0
    capsys.readouterr()
    assert main(["compare", "--study", str(path), *place]) == 0
    said = capsys.readouterr().out
    assert "Tuning sensitivity on tiny (3 split(s)): each tuned method takes" in said
    assert f"ce+crt: {LR}, ce+crt; supcon+crt: {WEIGHT}, supcon+crt" in said
    variants = pd.read_csv(results / "compare" / "tuning_variants.csv")
    assert variants.groupby("method")["chosen"].sum().to_dict() == {"ce+crt": 3, "supcon+crt": 3}
    pairs = pd.read_csv(results / "compare" / "tuning.csv")
    assert set(pairs["values"]) == {"defaults", "chosen"} and set(pairs["method"]) == {"supcon+crt"}
    at_defaults = pairs[pairs["values"] == "defaults"].iloc[0]
    page = pd.read_csv(results / "compare" / "pairs.csv")
    assert at_defaults["mean_difference"] == pytest.approx(page.iloc[0]["mean_difference"])
    fresh = tmp_path / "fresh"
    assert main(["compare", "--study", str(path), "--results-dir", str(fresh)]) == 0
    for name in ("tuning.md", "tuning_variants.md", "verdict.md"):
        assert (fresh / "compare" / name).read_text() == (results / "compare" / name).read_text()


def _five_splits() -> DatasetArchive:
    """Five splits with their own test sets. At the recipes' values supcon+crt is 5.5 points
    over ce+crt and kcl+crt 0.5; validation prefers ce+crt's LR variant (5 points higher on
    test), so with the choice supcon+crt is level and kcl+crt 4.5 points behind."""
    noise = [0.001, -0.002, 0.0015, -0.001, 0.0005]
    scores = {  # method: (validation, test) before the split's noise
        "ce+crt": (0.50, 0.50), LR: (0.60, 0.55), "supcon+crt": (0.50, 0.555),
        WEIGHT: (0.40, 0.40), "kcl+crt": (0.50, 0.505), "ce": (0.45, 0.45),
    }  # fmt: skip
    rows = [
        {"run_id": f"{method}-{k}", "dataset": "d", "method": method, "settings_id": "x",
         "data_seed": k, "train_seed": 0, "split_hash": f"s{k}", "test_digest": f"t{k}",
         "balanced_accuracy": test + noise[k] * (j % 3),
         "val_balanced_accuracy": validation}
        for j, (method, (validation, test)) in enumerate(scores.items())
        for k in range(5)
    ]  # fmt: skip
    predicted = {row["run_id"]: np.zeros(4, np.int16) for row in rows}
    return DatasetArchive(
        pd.DataFrame(rows), predicted, {f"t{k}": np.zeros(4, np.int16) for k in range(5)}
    )


def test_the_section_says_which_decisions_the_choice_changed_and_who_was_tuned() -> None:
    registry = MethodRegistry()
    methods = ["ce", "ce+crt", "supcon+crt", "kcl+crt"]
    grids = {"ce+crt": [LR, "ce+crt"], "supcon+crt": [WEIGHT, "supcon+crt"]}
    archive = _five_splits()
    assert missing_variants(archive, grids) == []
    assert missing_variants(archive, {"ce+crt": ["ce+crt[stage2.lr=0.5]"]}) == [
        "ce+crt[stage2.lr=0.5]"
    ]
    as_run, tuned, chosen, variants = choose(
        "d", archive, methods, grids, "balanced_accuracy", True
    )
    assert set(chosen["ce+crt"]) == {LR} and set(chosen["supcon+crt"]) == {"supcon+crt"}
    found = Sensitivity(
        tuned,
        grids,
        chosen,
        variants,
        analyse([as_run], registry, 1.0, "ce"),
        analyse([tuned], registry, 1.0, "ce"),
    )
    written = section(found)
    assert "Of the 1 pair(s) with both sides tuned, 1 change their decision: supcon+crt " in (
        written.text
    )
    one_sided = "with the baseline alone tuned (one-sided, against the learner), 1 change"
    assert f"Of the 1 pair(s) {one_sided} their decision: kcl+crt (equivalent → worse)." in (
        written.text
    )
    assert "supcon+crt (better → equivalent)" in written.text
    table, variant_table = written.tables
    assert [row[1:4] for row in table.rows] == [
        ["supcon+crt", "ce+crt", "both"],
        ["kcl+crt", "ce+crt", "baseline"],
    ]
    numbers = table.numbers.set_index(["method", "values"])
    assert numbers.loc[("supcon+crt", "defaults"), "mean_difference"] == pytest.approx(5.5, abs=0.5)
    assert numbers.loc[("supcon+crt", "chosen"), "mean_difference"] == pytest.approx(0.5, abs=0.5)
    assert variant_table.numbers.set_index("variant").loc[LR, "chosen"] == 5


def test_the_page_notes_a_tuning_grid_not_yet_run_and_omits_one_not_compared(
    tiny_project: Path,
) -> None:
    registry = MethodRegistry()
    study = load_study(_write(tiny_project / "studies", STUDY), registry)
    assert study.tuning is not None
    grids = study.tuning.variants(registry)
    asked = TuningAsked("tiny", grids, list(study.methods), "ce", "bench study run S.toml")
    archive = _five_splits()
    runs = archive.runs
    partial = DatasetArchive(runs[runs["method"] != WEIGHT], archive.predicted, archive.labels)
    scores = scores_of({"tiny": partial}, list(study.methods), "balanced_accuracy")
    note = sensitivity_section(asked, {"tiny": partial}, scores, registry, "balanced_accuracy", 1)
    assert note is not None and note.tables == []
    assert note.text == (
        "Tuning sensitivity on tiny: not compared yet; 1 variant(s) of its grids have no "
        f"finished run (first {WEIGHT}); `bench study run S.toml` runs them."
    )
    other = {"elsewhere": partial}
    assert sensitivity_section(asked, other, scores, registry, "balanced_accuracy", 1) is None
    found = sensitivity_section(asked, {"tiny": archive}, scores, registry, "balanced_accuracy", 1)
    assert found is not None and "Tuning sensitivity on tiny (5 split(s))" in found.text
