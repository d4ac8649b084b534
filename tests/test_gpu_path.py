"""The GPU path, the training profiles and the weights path, tested on the CPU: batches served
the same way in every mode, `--compile` with its fallback, `--profile`, `--weights PATH`,
`--no-pretrained`, and the GPU benchmark script at its tiny size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from bench.cli.main import main
from bench.components.models import build_classifier, read_weights
from bench.core.errors import BenchError
from bench.data.specs import get_spec
from bench.experiment.experiment import settings_for
from bench.recipes.methods import MethodRegistry
from bench.stage1 import training
from bench.stage1.batches import BatchSource, fits_on_device

REPO = Path(__file__).resolve().parents[1]

PROFILE = """
[training.profiles.wide]
description = "the wide compact ResNet at 20 px"
backbone = "resnet-compact-wide"
image_size = 20
"""


def _run(results: Path, *extra: str) -> int:
    argv = ["run", "--dataset", "tiny", "--methods", "ce", "--seeds", "0", "--results-dir"]
    return main([*argv, str(results), "--device", "cpu", "--no-progress", "--no-report", *extra])


def _record(results: Path) -> dict:
    [path] = (results / "tiny" / "runs").glob("*/run.json")
    return json.loads(path.read_text())


def test_every_batch_mode_serves_the_same_batches() -> None:
    images = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(50) % 7
    order = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    cpu = torch.device("cpu")
    host = list(BatchSource(images, labels, cpu, "host").batches(order, 16, 3))
    resident = list(BatchSource(images, labels, cpu, "resident").batches(order, 16, 3))
    assert len(host) == len(resident) == 3
    for (a, y), (b, z) in zip(host, resident, strict=True):
        assert torch.equal(a, b) and torch.equal(y, z)
    assert torch.equal(host[1][0], images[order[16:32]])
    assert BatchSource.on(images, labels, cpu).mode == "host"
    assert fits_on_device(4 * 2**30, 12 * 2**30) and not fits_on_device(6 * 2**30, 12 * 2**30)


@pytest.mark.slow
def test_compile_falls_back_with_a_reason_and_never_changes_the_run_id(
    tiny_project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(tmp_path / "plain") == 0

    def unsupported(module: torch.nn.Module) -> torch.nn.Module:
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(training.torch, "compile", unsupported)
    capsys.readouterr()
    # Its own cache: the stage 1 is trained again, not reused (compiling keeps the key).
    assert _run(tmp_path / "compiled", "--compile", "--cache-dir", str(tmp_path / "c2")) == 0
    out = capsys.readouterr().out
    assert "not compiled (RuntimeError: no C++ compiler found)" in out
    plain, compiled = _record(tmp_path / "plain"), _record(tmp_path / "compiled")
    assert plain["run_id"] == compiled["run_id"]
    assert compiled["compile"] is True and plain["compile"] is False
    assert compiled["stage1"]["compiled"].startswith("not compiled (RuntimeError")
    # Where compiling works, training goes through the compiled backbone.
    calls: list[int] = []

    def compiling(module: torch.nn.Module):
        def run(x: torch.Tensor) -> torch.Tensor:
            calls.append(len(x))
            return module(x)

        return run

    monkeypatch.setattr(training.torch, "compile", compiling)
    assert _run(tmp_path / "compiled-ok", "--compile", "--epochs", "1") == 0
    assert "stage 1: compiled" in capsys.readouterr().out and len(calls) > 3
    assert _record(tmp_path / "compiled-ok")["stage1"]["compiled"] == "compiled"


@pytest.mark.slow
def test_a_profile_layers_its_settings_and_is_recorded(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = tiny_project / "datasets" / "tiny.toml"
    spec_file.write_text(spec_file.read_text() + PROFILE)
    spec, method = get_spec("tiny"), MethodRegistry().get("ce")
    wide = settings_for(spec, method, {}, "wide").settings
    assert (wide.backbone, wide.image_size, wide.epochs) == ("resnet-compact-wide", 20, 2)
    assert settings_for(spec, method, {"image_size": 24}, "wide").settings.image_size == 24
    with pytest.raises(BenchError, match=r"unknown tiny training profile 'gpu'.*Known: cpu, wide"):
        settings_for(spec, method, {}, "gpu")
    tuned = MethodRegistry().get("tuned/supcon+crt-synthetic")  # tuned at resnet-compact
    with pytest.raises(
        BenchError, match=r"tuned at .*'backbone': 'resnet-compact'.* --profile wide"
    ):
        settings_for(spec, tuned, {}, "wide")
    assert _run(tmp_path / "cpu") == 0 and _run(tmp_path / "wide", "--profile", "wide") == 0
    cpu_run, wide_run = _record(tmp_path / "cpu"), _record(tmp_path / "wide")
    assert (cpu_run["profile"], wide_run["profile"]) == ("cpu", "wide")
    assert wide_run["config"]["training"]["image_size"] == 20
    assert cpu_run["run_id"] != wide_run["run_id"]
    capsys.readouterr()
    assert main(["list", "datasets"]) == 0
    assert "profile wide: the wide compact ResNet at 20 px" in capsys.readouterr().out


def test_a_profile_named_cpu_or_with_a_misspelt_setting_is_refused(tiny_project: Path) -> None:
    spec_file = tiny_project / "datasets" / "tiny.toml"
    original = spec_file.read_text()
    spec_file.write_text(original + "\n[training.profiles.cpu]\nepochs = 3\n")
    with pytest.raises(BenchError, match="profile 'cpu' is the \\[training\\] table itself"):
        get_spec("tiny")
    spec_file.write_text(original + '\n[training.profiles.big]\nweights = "/w.pt"\n')
    with pytest.raises(BenchError, match="weights are given on the command line"):
        get_spec("tiny")
    spec_file.write_text(original + "\n[training.profiles.big]\nepoch = 3\n")
    with pytest.raises(BenchError, match=r"\[training.profiles.big\]: unknown key\(s\) epoch"):
        get_spec("tiny")


@pytest.mark.slow
def test_weights_from_a_file_are_loaded_checked_and_part_of_the_run_id(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "resnet18.pt"
    torch.save(reference.state_dict(), path)
    model = build_classifier("resnet18", 7, pretrained=True, weights_file=str(path))
    loaded = model.backbone.state_dict()
    expected = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    extra = ("--backbone", "resnet18", "--image-size", "32", "--epochs", "1")
    assert _run(tmp_path / "weights", *extra, "--weights", str(path)) == 0
    record = _record(tmp_path / "weights")
    training_block = record["config"]["training"]
    assert training_block["pretrained"] is True and training_block["weights"] == str(path)
    assert len(training_block["weights_digest"]) == 32
    # Other weights in the same file: another run id.
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18(num_classes=1000).state_dict(), path)
    assert _run(tmp_path / "other", *extra, "--weights", str(path)) == 0
    assert _record(tmp_path / "other")["run_id"] != record["run_id"]
    # Weights of another architecture, or not a state dict: one line, before any training.
    torch.save(torchvision.models.resnet50(num_classes=1000).state_dict(), path)
    capsys.readouterr()
    assert _run(tmp_path / "bad", *extra, "--weights", str(path)) == 2
    assert "not resnet18's state dict" in capsys.readouterr().err
    torch.save({"model": object}, path)
    with pytest.raises(BenchError, match="not a state dict torch can read"):
        read_weights(path, "resnet18")


@pytest.mark.slow
def test_no_pretrained_overrides_a_pretrained_profile_and_is_recorded(
    tiny_project: Path, tmp_path: Path
) -> None:
    spec_file = tiny_project / "datasets" / "tiny.toml"
    spec_file.write_text(
        spec_file.read_text()
        + '\n[training.profiles.big]\nbackbone = "resnet18"\nimage_size = 32\npretrained = true\n'
    )
    assert _run(tmp_path / "r", "--profile", "big", "--no-pretrained", "--epochs", "1") == 0
    assert _record(tmp_path / "r")["config"]["training"]["pretrained"] is False


@pytest.mark.slow
def test_the_gpu_benchmark_runs_at_its_tiny_size_on_the_cpu(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--tiny"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("device: ")
    assert any(
        line.startswith("resnet50 at 32 px") and "harness / bare = " in line for line in lines
    )
    assert any(line.startswith("resnet-compact at 16 px") for line in lines)
    assert any(
        line.startswith("bench run --methods ce,ce+crt") and " s wall" in line for line in lines
    )
