"""Study files, results archives and `bench study`: a file checked field by field, archives
that merge by the stated rule, and a tiny study run, exported, and compared again from its
archive alone with the same tables and verdict."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.cli.main import main
from bench.core.errors import BenchError
from bench.data.specs import get_spec
from bench.recipes.methods import MethodRegistry
from bench.results.archive import DatasetArchive, merge, read_archive, write_archive
from bench.run.plan import RunOptions, group_units, plan
from bench.study.file import load_study

STUDY = """
description = "A tiny study."
methods = ["ce", "ce+crt", "supcon+crt"]
data_seeds = [0, 1, 2]
train_seeds = [0]

[compare]
reference = "ce"
rope = 1.0

[[datasets]]
name = "tiny"
epochs = 1
pooled = true       # generated, pooled all the same: the study says so

[[datasets]]
name = "other"
pooled = false
"""


def _write(folder: Path, text: str, name: str = "tiny-study.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def _other_dataset(project: Path) -> None:
    spec = (project / "datasets" / "tiny.toml").read_text()
    (project / "datasets" / "other.toml").write_text(spec.replace("seed = 0", "seed = 1"))


def test_a_study_file_is_read_with_its_datasets_settings_and_seeds(tiny_project: Path) -> None:
    _other_dataset(tiny_project)
    study = load_study(_write(tiny_project / "studies", STUDY))
    assert study.name == "tiny-study" and study.archive == tiny_project / "studies" / "tiny-study"
    assert [d.name for d in study.datasets] == ["tiny", "other"]
    assert study.datasets[0].overrides == {"epochs": 1} and study.datasets[1].pooled is False
    assert (study.data_seeds, study.train_seeds, study.rope) == ((0, 1, 2), (0,), 1.0)
    assert study.datasets[0].options() == "--epochs 1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('methods = ["ce", "ce+crt", "supcon+crt"]', "methods = []"), "is missing"),
        (("data_seeds = [0, 1, 2]", "data_seeds = [0, 1, 1]"), "lists a seed twice"),
        (("data_seeds = [0, 1, 2]", "data_seeds = [0, -1]"), "out of range"),
        (("train_seeds", "train_seed"), "did you mean 'train_seeds'"),
        (('name = "other"', 'name = "tiny"'), "'tiny' is listed twice"),
        (('name = "other"', 'name = "tinny"'), "tinny"),
        (("epochs = 1", "epochs = 0"), "'epochs' = 0 is out of range"),
        (("epochs = 1", 'backbone = "resnet-9000"'), "resnet-9000"),
        (('"supcon+crt"]', '"supcon+crtt"]'), "stage-2 recipe 'crtt'"),
        (('reference = "ce"', 'reference = "focal"'), "'focal' is the stage 1 of none"),
        (("rope = 1.0", "rope = 0.0"), "positive number of points"),
    ],
)
def test_a_wrong_study_file_is_one_error_naming_the_field(
    tiny_project: Path, change: tuple[str, str], message: str
) -> None:
    _other_dataset(tiny_project)
    path = _write(tiny_project / "studies", STUDY.replace(*change))
    with pytest.raises(BenchError) as error:
        load_study(path)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith(str(path))


def _archive(
    values: dict[str, float], device: str = "cpu (EPYC)", threads: int = 1, first_seed: int = 0
):
    runs = pd.DataFrame(
        {
            "run_id": list(values), "dataset": "d", "method": "ce", "settings_id": "0123",
            "data_seed": range(first_seed, first_seed + len(values)), "train_seed": 0,
            "split_hash": "1e5",
            "test_digest": "t", "git_commit": "", "bench_version": "0.1.0", "torch_version": "",
            "device": device, "threads": threads,
            "balanced_accuracy": list(values.values()), "recall_a": 0.5,
        }
    )  # fmt: skip
    predicted = {run: np.array([0, 1, 1], np.int16) for run in values}
    return DatasetArchive(runs, predicted, {"t": np.array([0, 1, 0], np.int16)})


def test_archives_merge_by_the_stated_rule_and_never_silently() -> None:
    kept = _archive({"r1": 0.5, "r2": 0.6})  # data seeds 0 and 1
    same = merge(kept, _archive({"r2": 0.6, "r3": 0.7}, first_seed=1), None)
    assert (same.added, same.same, same.resolved) == (1, 1, ())
    assert list(same.archive.runs["run_id"]) == ["r1", "r2", "r3"]
    # Other numbers on the same device and thread count: one of them is not what it claims.
    with pytest.raises(BenchError, match="recorded twice on cpu \\(EPYC\\) at 1 thread"):
        merge(kept, _archive({"r2": 0.61}), "incoming")
    # Elsewhere (another machine or thread count): the user names which to keep.
    elsewhere = _archive({"r2": 0.61}, threads=2, first_seed=1)
    with pytest.raises(BenchError, match=r"--prefer kept .* or --prefer incoming"):
        merge(kept, elsewhere, None)
    incoming = merge(kept, elsewhere, "incoming")
    assert incoming.resolved == ("r2",)
    assert incoming.archive.runs.set_index("run_id").loc["r2", "balanced_accuracy"] == 0.61
    held = merge(kept, elsewhere, "kept")
    assert held.archive.runs.set_index("run_id").loc["r2", "balanced_accuracy"] == 0.6
    # r2's cell run on a GPU: another run id (the device type enters it), still one cell.
    on_cuda = _archive({"r2-cuda": 0.62}, device="cuda (H100)", first_seed=1)
    with pytest.raises(BenchError, match=r"a cell the archive holds under another run id"):
        merge(kept, on_cuda, None)
    swapped = merge(kept, on_cuda, "incoming")
    assert list(swapped.archive.runs["run_id"]) == ["r1", "r2-cuda"]
    assert set(swapped.archive.predicted) == {"r1", "r2-cuda"}
    assert swapped.resolved == ("r2-cuda",)
    assert list(merge(kept, on_cuda, "kept").archive.runs["run_id"]) == ["r1", "r2"]
    # Both in the runs merged in: no rule of origin tells which to keep.
    both = _archive({"r2-cuda": 0.62, "r2-cpu": 0.6}, first_seed=1).runs.assign(data_seed=1)
    twice = DatasetArchive(both, {r: np.array([0, 1, 1], np.int16) for r in both["run_id"]},
                           on_cuda.labels)  # fmt: skip
    with pytest.raises(BenchError, match=r"hold one cell twice .* r2-cuda and r2-cpu"):
        merge(kept, twice, "incoming")


def test_an_archive_is_written_sorted_and_read_back_whole(tmp_path: Path) -> None:
    archive = _archive({"r2": 0.6, "r1": 0.5})
    write_archive(tmp_path, "d", archive)
    first = (tmp_path / "d.csv").read_bytes()
    back = read_archive(tmp_path, "d")
    assert list(back.runs["run_id"]) == ["r2", "r1"]  # by method, then data seed
    assert set(back.predicted) == {"r1", "r2"} and set(back.labels) == {"t"}
    # Digests of digits only stay text: "0123" is not 123, "1e5" not 100000.0.
    assert list(back.runs["settings_id"]) == ["0123", "0123"]
    assert list(back.runs["split_hash"]) == ["1e5", "1e5"]
    write_archive(tmp_path, "d", back)
    assert (tmp_path / "d.csv").read_bytes() == first  # an unchanged archive: the same bytes
    (tmp_path / "d.npz").unlink()
    with pytest.raises(BenchError, match="unreadable"):
        read_archive(tmp_path, "d")
    assert read_archive(tmp_path, "absent").runs.empty


def _tables(folder: Path) -> dict[str, str]:
    return {name: (folder / name).read_text() for name in ("ranks.md", "pairs.md", "verdict.md")}


@pytest.mark.slow
def test_a_study_runs_exports_and_is_compared_again_from_its_archive_alone(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], one_thread: None
) -> None:
    _other_dataset(tiny_project)
    path = _write(tiny_project / "studies", STUDY)
    results = tmp_path / "results"
    place = ["--results-dir", str(results)]
    assert main(["study", "status", str(path), *place]) == 0
    out = capsys.readouterr().out
    assert "tiny: 0 of 9 run(s) done, 9 missing, 6 stage-1 training(s) to do" in out
    assert "(not measured or plannable here)" in out
    argv = ["study", "run", str(path), *place, "--device", "cpu", "--no-progress"]
    assert main([*argv, "--datasets", "tiny", "--export"]) == 0
    assert (tiny_project / "studies" / "tiny-study" / "tiny.csv").exists()
    assert main(["study", "status", str(path), *place]) == 0
    out = capsys.readouterr().out
    assert "tiny: 9 of 9 run(s) done, 0 missing" in out and "other: 0 of 9" in out
    # A row outside the study's grid (another lab's extra data seed) survives every export.
    archived = read_archive(tiny_project / "studies" / "tiny-study", "tiny")
    extra = archived.runs.iloc[[0]].assign(run_id="extra-d9", data_seed=9)
    first = str(archived.runs["run_id"].iloc[0])
    archived.predicted["extra-d9"] = archived.predicted[first]
    archived.runs = pd.concat([archived.runs, extra], ignore_index=True)
    write_archive(tiny_project / "studies" / "tiny-study", "tiny", archived)
    assert main(argv) == 0
    assert main(["study", "export", str(path), *place]) == 0
    kept = read_archive(tiny_project / "studies" / "tiny-study", "tiny").runs
    assert "extra-d9" in set(kept["run_id"]) and len(kept) == 10
    archived = pd.read_csv(tiny_project / "studies" / "tiny-study" / "other.csv")
    assert len(archived) == 9 and {"test_digest", "device", "threads", "recall_mel"} <= set(
        archived.columns
    )
    runs = pd.read_csv(results / "tiny" / "runs.csv").set_index("run_id")
    tiny = pd.read_csv(tiny_project / "studies" / "tiny-study" / "tiny.csv").set_index("run_id")
    tiny = tiny.drop(index="extra-d9")
    assert (tiny["balanced_accuracy"] == runs.loc[tiny.index, "balanced_accuracy"]).all()
    assert set(runs.loc[tiny.index, "stage1_epochs"]) == {1}  # the study's epochs = 1

    capsys.readouterr()
    assert main(["compare", "--study", str(path), *place]) == 0
    said = capsys.readouterr().out
    assert "other (generated, or marked so in the study) is tested on its own" in said
    from_results = _tables(results / "compare")
    numbers = pd.read_csv(results / "compare" / "pairs.csv")
    # A fresh folder without results: the archive alone gives the same tables and verdict.
    fresh = tmp_path / "fresh"
    assert main(["compare", "--study", str(path), "--results-dir", str(fresh)]) == 0
    assert capsys.readouterr().out.replace(str(fresh), "") == said.replace(str(results), "")
    assert _tables(fresh / "compare") == from_results
    pd.testing.assert_frame_equal(pd.read_csv(fresh / "compare" / "pairs.csv"), numbers)
    # A fresh machine with the archive alone runs nothing again.
    again = ["study", "run", str(path), "--results-dir", str(fresh), "--device", "cpu"]
    assert main([*again, "--no-progress"]) == 0
    assert capsys.readouterr().out.count("every run is done") == 2
    assert not (fresh / "tiny" / "runs").exists()
    # Splits that miss different methods run together, in one pool: exactly the missing cells.
    partial = _write(tiny_project / "studies", STUDY, "partial-study.toml")
    studies = tiny_project / "studies"
    shutil.copytree(studies / "tiny-study", studies / "partial-study")
    gaps = {("ce+crt", 0), ("supcon+crt", 1), ("ce", 2)}
    archived = read_archive(studies / "partial-study", "tiny")
    cells = zip(archived.runs["method"], archived.runs["data_seed"], strict=True)
    archived.runs = archived.runs[[cell not in gaps for cell in cells]]
    write_archive(studies / "partial-study", "tiny", archived)
    gapped = tmp_path / "gapped"
    assert main(["study", "run", str(partial), "--datasets", "tiny", "--results-dir", str(gapped),
                 "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    assert "3 method(s), 3 run(s): 0 already done, 3 to run" in capsys.readouterr().out
    ran = pd.read_csv(gapped / "tiny" / "runs.csv")
    assert set(zip(ran["method"], ran["data_seed"], strict=True)) == gaps
    # A part of the study (while it is being built): only the datasets named.
    part = ["compare", "--study", str(path), "--datasets", "tiny", "--results-dir", str(fresh)]
    assert main(part) == 0
    assert "Over 1 dataset(s) (tiny 3 split(s))" in capsys.readouterr().out
    assert main([*part, "--methods", "ce"]) == 2
    assert "--study names the methods" in capsys.readouterr().err
    assert main([*part, "--imbalance", "20"]) == 2
    assert "leave out --imbalance" in capsys.readouterr().err

    # A second machine's archive of the same study merges in; a run it has that this one
    # lacks is added.
    other_lab = tmp_path / "lab"
    shutil.copytree(tiny_project / "studies" / "tiny-study", other_lab)
    table = tiny_project / "studies" / "tiny-study" / "tiny.csv"
    rows = pd.read_csv(table)
    rows.iloc[1:].to_csv(table, index=False)
    assert main(["study", "merge", str(path), str(other_lab), "--datasets", "tiny"]) == 0
    assert "tiny: 1 run(s) added, 9 already there" in capsys.readouterr().out
    changed = pd.read_csv(other_lab / "tiny.csv")
    changed.loc[0, "balanced_accuracy"] += 0.01
    changed.to_csv(other_lab / "tiny.csv", index=False)
    assert main(["study", "merge", str(path), str(other_lab)]) == 2
    assert "with different numbers" in capsys.readouterr().err


def test_a_pool_starts_the_stage_1s_measured_longest_first(
    tiny_project: Path, tmp_path: Path
) -> None:
    options = RunOptions(
        "tiny", "ce,ce+crt,supcon+crt,triplet+crt", (0,), (0,), results_dir=tmp_path
    )
    methods = MethodRegistry().expand(options.methods)
    planned = plan(options, get_spec("tiny"), methods, torch.device("cpu"))

    def order(seconds: dict[str, float]) -> list[str]:
        timed = dataclasses.replace(options, stage1_seconds=seconds)
        return [unit.methods[0].stage1.name for unit in group_units(planned, timed, tmp_path)]

    # Unmeasured, a stage 1 costs its epochs × images × pixels: alike here, so ce, with two
    # runs to its one stage 1, comes first.
    assert order({}) == ["ce", "supcon", "triplet"]
    # Measured (a study's archive): the longest first; one not measured at their median.
    assert order({"ce": 10.0, "supcon": 100.0}) == ["supcon", "triplet", "ce"]
    assert order({"ce": 100.0, "triplet": 10.0, "supcon": 50.0}) == ["ce", "supcon", "triplet"]
