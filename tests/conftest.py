"""Shared fixtures: a throw-away project root with a tiny synthetic dataset, an isolated cache;
the same environment for module-scoped fixtures (`tiny_environment`); claims aged as time would
age them (`age_dead_claims`); and the `slow` marker for tests in files this suite cannot mark."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.cli.main import main
from bench.core import claims
from bench.core.layout import cache_root
from bench.data.imageset import ImageSet
from bench.data.loading import load_imageset
from bench.data.specs import DatasetSpec

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


# Tests that train end to end but whose files carry no `slow` marker yet (another change owns
# them): marked here, so that `pytest -m "not slow"` stays a quick loop. Move the marker into
# the file and drop the entry when that change lands.
@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own decoded-image cache and no inherited data root."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)


@contextlib.contextmanager
def single_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One torch thread here and in every child process (equal thread counts give equal
    metrics), and claims that go stale after six `HEARTBEAT`s."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("BENCH_HEARTBEAT", str(HEARTBEAT))
    monkeypatch.setattr(claims, "HEARTBEAT", HEARTBEAT)  # claims held by this process too
    monkeypatch.setattr(claims, "STALE_AFTER", 6 * HEARTBEAT)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """See `single_thread`."""
    with single_thread(monkeypatch):
        yield


def build_tiny_project(root: Path) -> Path:
    """A project root at `root` with the real method recipes (stage-2 fits shortened to 200
    steps) and a tiny `tiny` synthetic dataset."""
    shutil.copytree(REPO / "methods", root / "methods")
    for recipe in (root / "methods").glob("*.toml"):  # tiny data: a tenth of the head steps
        recipe.write_text(recipe.read_text().replace("min_steps = 2000", "min_steps = 200"))
    (root / "datasets").mkdir()
    (root / "datasets" / "tiny.toml").write_text(TINY_SPEC)
    return root


@pytest.fixture
def tiny_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """See `build_tiny_project`; `BENCH_HOME` points at it."""
    root = build_tiny_project(tmp_path / "project")
    monkeypatch.setenv("BENCH_HOME", str(root))
    return root


@contextlib.contextmanager
def tiny_environment(folder: Path) -> Iterator[Path]:
    """For module-scoped fixtures, which cannot use the function-scoped ones: the environment
    a test using `tiny_project` and `one_thread` runs in (with the autouse `isolated_cache`),
    built under `folder` and undone on leaving. Yields the project root."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("BENCH_CACHE_DIR", str(folder / "image-cache"))
        monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)
        root = build_tiny_project(folder / "project")
        monkeypatch.setenv("BENCH_HOME", str(root))
        with single_thread(monkeypatch):
            yield root


def _held_by_a_live_process(claim: Path) -> bool:
    """Whether `claim` names a process of this host that still exists (and whose heartbeat
    thread therefore keeps it fresh)."""
    try:
        held = json.loads(claim.read_text())
        host, pid = held["host"], int(held["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # unreadable: no heartbeat keeps it fresh as a claim
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


def age_dead_claims(*roots: Path) -> list[Path]:
    """What waiting out `claims.STALE_AFTER` does to the claims under `roots`, at once: those
    of processes that have ended are no longer refreshed, so they go stale (their modification
    time is set an hour back); those of live processes on this host are refreshed by their
    heartbeat, so they are left alone. Call it once the processes meant to be dead have been
    reaped. Returns the claims aged."""
    old = time.time() - 3600
    aged = []
    for root in roots:
        for claim in sorted(root.rglob("*.claim")) if root.is_dir() else []:
            if not _held_by_a_live_process(claim):
                os.utime(claim, (old, old))
                aged.append(claim)
    return aged


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


def load_images(
    spec: DatasetSpec, image_size: int, data_root: Path | None = None, **options: Any
) -> ImageSet:
    """`load_imageset` with the test's cache (`$BENCH_CACHE_DIR`, set per test)."""
    return load_imageset(spec, image_size, cache_dir=cache_root(), data_root=data_root, **options)
