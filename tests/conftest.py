"""Shared fixtures: a throw-away project root with a tiny synthetic dataset, an isolated cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.cli import main

REPO = Path(__file__).resolve().parents[1]
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
"""


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own decoded-image cache and no inherited data root."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)


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
