"""Every file and flag a user writes fails in one line with exit code 2, whatever it holds: the
probe's commands (issue 20) as fixtures, through the one validation layer."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import torchvision

from bench.cli.main import main
from bench.components import models
from bench.core import validation
from bench.core.errors import BenchError

TUNED = """description = "ce tuned on tiny"
[tuned]
method = "ce"
dataset = "tiny"
data_seeds = [0]
[settings]
epochs = 2
[stage1_recipe]
description = "x"
[stage1_recipe.loss]
name = "ce"
"""


@pytest.fixture(autouse=True)
def in_scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The relative results folder `r` of these commands lands in the test's own folder."""
    monkeypatch.chdir(tmp_path)


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: " in err and "Traceback" not in err, err
    return err


def _run(*extra: str) -> list[str]:
    return ["run", "--dataset", "tiny", "--methods", "ce", "--results-dir", "r", *extra]


def _weights_run(path: Path, *extra: str) -> list[str]:
    return _run("--backbone", "resnet18", "--image-size", "32", "--weights", str(path), *extra)


def test_a_state_dict_holding_a_string_is_refused(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "strval.pth"
    torch.save({"conv1.weight": "x"}, path)
    assert "conv1.weight holds a str, not a tensor" in _error(_weights_run(path), capsys)


@pytest.mark.parametrize("kind", ["pickle", "random", "too-large"])
def test_unreadable_weights_are_one_line_naming_the_file(
    tiny_project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    path = tmp_path / f"{kind}.pth"
    if kind == "pickle":  # would run `os.system` if unpickled: refused by weights_only
        path.write_bytes(pickle.dumps(os.system))
    elif kind == "random":
        path.write_bytes(os.urandom(4096))
    else:
        torch.save(torchvision.models.resnet18().state_dict(), path)
        monkeypatch.setattr(models, "WEIGHTS_LIMIT", 1024)
    err = _error(_weights_run(path), capsys)
    assert str(path) in err
    expected = "over the 1.0 KiB" if kind == "too-large" else "not a state dict torch can read"
    assert expected in err


@pytest.mark.timeout(60)
def test_weights_naming_a_fifo_are_refused_without_opening_it(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "weights.fifo"
    os.mkfifo(fifo)  # opening it would block until a writer came: it must never be opened
    assert "is a FIFO, not a file" in _error(_weights_run(fifo), capsys)


def test_weights_advice_is_never_circular(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "w.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    compact = _error(_run("--weights", str(path)), capsys)
    assert "resnet-compact has no pretrained weights; drop --weights" in compact
    both = _error(_weights_run(path, "--no-pretrained"), capsys)
    assert "drop one" in both


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe[executor]\n", "not UTF-8 text (byte 0)"),
        (b"[executor]\ntime = inf\n", "'time' = inf is out of range"),
        (b"[executor]\ntime = nan\n", "'time' = nan is out of range"),
        (b'[executor]\nname = "slurm"\ntime = "9999d"\n', "at most 365 days"),
        (b"[executor]\njobs = true\n", "'jobs' must be an integer, got True"),
        (b"[executor]\njobs = 12345678901234567890\n", "'jobs' = 12345678901234567890 is out"),
        (b'[executor]\nname = "slurm"\nprobe = "no"\n', "'probe' must be true or false"),
        (b'[executor]\nname = "slurm"\nmem_gb = nan\n', "'mem_gb' = nan is out of range"),
        (b"[executor]\ncpus = 4\n", "cpus only apply to SLURM"),
        (b"[executor]\njbos = 2\n", "did you mean 'jobs'?"),
    ],
)
def test_bad_executor_configs_are_one_line(
    tiny_project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    message: str,
) -> None:
    config = tmp_path / "executor.toml"
    config.write_bytes(content)
    err = _error(_run("--executor-config", str(config)), capsys)
    assert message in err and str(config) in err


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: 'tuned = "oops"\n' + t.split("[settings]")[1].join(["[settings]", ""]),
            "[tuned] must be a table, got 'oops'",
        ),
        (lambda t: t.replace("data_seeds = [0]", "data_seeds = [-5]"), "= -5 is out of range"),
        (lambda t: "stage2_recipe = 7\n" + t, "[stage2_recipe] must be a table, got 7"),
        (lambda t: t.replace("epochs = 2", 'weights = "/w.pth"'), "never by a recipe"),
        (lambda t: t.replace("epochs = 2", 'backbone = "vgg"'), "'backbone' = 'vgg' is not one"),
        (lambda t: t.replace("epochs = 2", "min_steps = 10000000000000"), "'min_steps' = 1"),
        (lambda t: t.replace('dataset = "tiny"', 'dataset = "../../etc"'), "a name, not a path"),
        (lambda t: t.encode("utf-16").decode("latin-1"), "not UTF-8 text"),
    ],
)
def test_bad_tuned_recipes_are_one_line(
    tiny_project: Path, capsys: pytest.CaptureFixture[str], edit, message: str
) -> None:
    folder = tiny_project / "methods" / "tuned"
    folder.mkdir(exist_ok=True)
    (folder / "x.toml").write_text(TUNED)
    assert main(["list", "methods"]) == 0  # the valid file is accepted
    capsys.readouterr()
    (folder / "x.toml").write_bytes(edit(TUNED).encode("latin-1", errors="replace"))
    err = _error(_run("--methods", "tuned/x"), capsys)
    assert message in err and "x.toml" in err


def test_a_tuned_name_cannot_leave_the_tuned_folder(
    tiny_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tiny_project / "x.toml").write_text(TUNED)  # methods/tuned/../../x.toml
    assert "a name, not a path" in _error(_run("--methods", "tuned/../../x"), capsys)


def test_a_non_utf8_dataset_spec_is_one_line(
    tiny_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tiny_project / "datasets" / "tiny.toml").write_bytes(b'description = "\xe9"\n')
    assert "not UTF-8 text (byte 15)" in _error(_run(), capsys)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            _run("--jobs", "abc"),
            "argument --jobs: expected an integer from 1 to 1000000, got 'abc'",
        ),
        (_run("--jobs", "0"), "expected an integer from 1 to 1000000"),
        (_run("--min-steps", "x"), "expected an integer of 0 or more, got 'x'"),
        (_run("--min-steps", "99999999999"), "'min_steps' = 99999999999 is out of range"),
        (_run("--slurm-mem-gb", "nan", "--executor", "slurm"), "expected a finite number, got nan"),
        (_run("--slurm-mem-gb", "0", "--executor", "slurm"), "--slurm-mem-gb = 0.0 is out"),
        (["status", "--dataset", "tiny", "--results-dir", "r", "--profile", "turbo"], "turbo"),
    ],
)
def test_bad_flags_are_one_line(
    tiny_project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r" / "tiny").mkdir(parents=True)  # a results folder for `bench status`
    err = _error(argv, capsys)
    assert message in err
    assert "_int" not in err  # no internal names


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "is a folder, not a file"),
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b"x" * (validation.TOML_LIMIT + 1)), "over the 1.0 MiB"),
    ],
)
def test_read_toml_refuses_what_is_not_a_small_regular_file(
    tmp_path: Path, make, message: str
) -> None:
    path = tmp_path / "x.toml"
    make(path)
    with pytest.raises(BenchError, match=message):
        validation.read_toml(path, "recipe")


def test_a_field_checks_type_range_choices_and_suggests_keys() -> None:
    fields = {
        "n": validation.Field(int, 1, 10),
        "x": validation.Field(float, 0.0),
        "rule": validation.Field(str, choices=("last", "best")),
        "seeds": validation.Field(list, 0, items=int),
    }
    assert validation.check_fields({"n": 3, "x": 1}, fields, "t") == {"n": 3, "x": 1.0}
    for table, message in [
        ({"n": True}, "'n' must be an integer, got True"),
        ({"n": 11}, "'n' = 11 is out of range; use a finite value from 1 to 10"),
        ({"x": float("inf")}, "'x' = inf is out of range"),
        ({"rule": "lst"}, "'rule' = 'lst' is not one of last, best. Did you mean 'last'"),
        ({"seeds": [1, "2"]}, "'seeds' must list int values, got '2'"),
        ({"seeds": [1, -2]}, "'seeds' = -2 is out of range"),
        ({"nn": 1}, "unknown key(s) nn ('nn': did you mean 'n'?)"),
    ]:
        with pytest.raises(BenchError) as raised:
            validation.check_fields(table, fields, "t")
        assert message in str(raised.value), raised.value
    with pytest.raises(BenchError, match="t must be a table, got 'x'"):
        validation.check_fields("x", fields, "t")


def test_first_line_keeps_a_librarys_paragraph_to_one_line() -> None:
    error = RuntimeError("Weights only load failed.\n\nPlease file an issue\n" + "x" * 500)
    assert validation.first_line(error) == "Weights only load failed."
    assert len(validation.first_line(RuntimeError("y" * 500))) == 160
