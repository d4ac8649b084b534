"""Shared fixtures: a throw-away project root with a tiny synthetic dataset, an isolated cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from bench.cli.main import main
from bench.core import claims

REPO = Path(__file__).resolve().parents[1]
HEARTBEAT = 0.5  # in tests a killed process's claims go stale after 3 s
SHARED_HAM = REPO.parent / "shared" / "data" / "ham10000"

TINY_SPEC = """
description = "Tiny synthetic set for tests."
formats = ["synthetic"]
classes = ["nv", "mel", "bkl", "bcc", "akiec", "vasc", "df"]

[params]
n_images = 420
imbalance_ratio = 10.0
difficulty = 0.5
seed = 0

[split]
val = 0.2
test = 0.3

[training]
image_size = 16
epochs = 2
batch_size = 64
min_steps = 0
"""


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own decoded-image cache and no inherited data root."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch):
    """One torch thread here and in every child process (equal thread counts give equal
    metrics), and claims that go stale after six `HEARTBEAT`s."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("BENCH_HEARTBEAT", str(HEARTBEAT))
    monkeypatch.setattr(claims, "HEARTBEAT", HEARTBEAT)  # claims held by this process too
    monkeypatch.setattr(claims, "STALE_AFTER", 6 * HEARTBEAT)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root with the real method recipes (stage-2 fits shortened to 200 steps) and a
    tiny `tiny` synthetic dataset."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "methods", root / "methods")
    for recipe in (root / "methods").glob("*.toml"):  # tiny data: a tenth of the head steps
        recipe.write_text(recipe.read_text().replace("min_steps = 2000", "min_steps = 200"))
    (root / "datasets").mkdir()
    (root / "datasets" / "tiny.toml").write_text(TINY_SPEC)
    monkeypatch.setenv("BENCH_HOME", str(root))
    return root


def run_tiny(results: Path, methods: str, *extra: str) -> int:
    """`bench run` on the tiny dataset, one seed, on the CPU, without progress bars."""
    argv = [
        "run",
        "--dataset",
        "tiny",
        "--methods",
        methods,
        "--seeds",
        "0",
        "--results-dir",
        str(results),
        "--device",
        "cpu",
        "--no-progress",
    ]
    return main([*argv, *extra])
