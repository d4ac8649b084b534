"""Killed and concurrent `bench run`s: identical metrics after a rerun, no debris, each stage 1
trained once, a consistent report. Real processes, killed with SIGKILL at chosen points."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HEARTBEAT, age_dead_claims, tiny_environment

from bench.cli.main import main

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"),
]

METHODS = "ce,ce+crt,ce+lws,rs-cb"

# Runs `bench` in a child that SIGKILLs itself at a chosen point: when it is about to rename
# a file onto a path matching PATTERN for the COUNT-th time, or at the COUNT-th training step.
CHILD = """
import os, re, signal, sys
import bench.stage1.schedule
pattern, count = sys.argv[1], int(sys.argv[2])
seen = [0]
def hit():
    seen[0] += 1
    if seen[0] == count:
        os.kill(os.getpid(), signal.SIGKILL)
if pattern == "step":
    real_lr = bench.stage1.schedule.lr_at
    def lr_at(*args):
        hit()
        return real_lr(*args)
    bench.stage1.schedule.lr_at = lr_at
else:
    real_replace = os.replace
    def replace(src, dst):
        if re.search(pattern, str(dst)):
            hit()
        return real_replace(src, dst)
    os.replace = replace
from bench.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


def _argv(results: Path, cache: Path) -> list[str]:
    return [
        "run", "--dataset", "tiny", "--methods", METHODS, "--seeds", "0",
        "--results-dir", str(results), "--cache-dir", str(cache), "--device", "cpu",
        "--no-progress",
    ]  # fmt: skip


def _metrics(results: Path) -> dict[str, dict]:
    return {
        json.loads((p.parent / "run.json").read_text())["config"]["method"]["name"]: json.loads(
            p.read_text()
        )
        for p in (results / "tiny" / "runs").glob("*/metrics.json")
    }


def _debris(*roots: Path) -> list[Path]:
    found = []
    for root in roots:
        found += list(root.rglob("*.tmp")) + list(root.rglob(".report@*"))
        found += list(root.rglob(".report.previous"))
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The metrics of an uninterrupted run, by method: computed once for every kill point, in
    the environment each case runs in (`tiny_project`, `one_thread`, an isolated cache)."""
    folder = tmp_path_factory.mktemp("reference")
    with tiny_environment(folder):
        assert main([*_argv(folder / "results", folder / "cache"), "--no-report"]) == 0
    metrics = _metrics(folder / "results")
    assert sorted(metrics) == sorted(METHODS.split(","))
    return metrics


@pytest.mark.parametrize(
    ("pattern", "count"),
    [
        (r"/run\.json$", 2),  # between a run's files and the record that marks it done
        ("step", 5),  # in the middle of training a stage 1 that holds its claim
        (r"/stage1/[0-9a-f]+\.json$", 1),  # an artefact's data written, its digest not
        (r"/report$", 1),  # the old report moved aside, the new one not yet in place
    ],
)
def test_a_rerun_after_a_kill_finishes_with_identical_metrics_and_no_debris(
    tiny_project: Path,
    tmp_path: Path,
    one_thread: None,
    reference: dict[str, dict],
    pattern: str,
    count: int,
) -> None:
    results, cache = tmp_path / "results", tmp_path / "cache"
    if pattern == r"/report$":  # a report to lose: build one first, then kill the next swap
        assert main(_argv(results, cache)) == 0
        (next((results / "tiny" / "runs").iterdir()) / "run.json").unlink()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, pattern, str(count), *_argv(results, cache)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert age_dead_claims(results, cache)  # the dead process's: stale, as after STALE_AFTER
    assert main(_argv(results, cache)) == 0
    assert _metrics(results) == reference
    assert len(list((results / "tiny" / "runs").iterdir())) == 4
    assert _debris(results, cache) == []
    assert (results / "tiny" / "report" / "index.html").exists()


def test_three_concurrent_runs_train_each_stage1_once_and_agree_on_the_report(
    tiny_project: Path, tmp_path: Path, one_thread: None
) -> None:
    results, cache = tmp_path / "results", tmp_path / "cache"
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.cli.main", *_argv(results, cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], outputs
    trained = [line for out in outputs for line in out.splitlines() if "stage 1 trained" in line]
    assert len(trained) == 2, outputs  # ce and rs-cb, once each across the three processes
    runs = list((results / "tiny" / "runs").glob("*/run.json"))
    assert len(runs) == 4 and all(json.loads(p.read_text())["status"] == "done" for p in runs)
    report = results / "tiny" / "report"
    listed = set(re.findall(r"\| (ce|ce\+crt|ce\+lws|rs-cb) \|", (report / "main.md").read_text()))
    page = (report / "index.html").read_text()
    assert listed == set(METHODS.split(",")) and all(f">{m}<" in page for m in listed)
    assert _debris(results, cache) == []
    assert not list(cache.rglob("*.claim")) and not list((results / "tiny").glob("*.claim"))


def test_a_live_claim_is_kept_alive_by_its_heartbeat(tmp_path: Path) -> None:
    holder = (
        "import sys, time; from pathlib import Path; from bench.core import claims\n"
        "claim = claims.try_claim(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)\n"
    )
    env = {**os.environ, "BENCH_HEARTBEAT": str(HEARTBEAT)}
    child = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path / "k.claim")],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    first = (tmp_path / "k.claim").stat().st_mtime
    try:  # refreshed while it lives: within a few heartbeats, however busy the machine
        deadline = time.monotonic() + 20 * HEARTBEAT
        while (tmp_path / "k.claim").stat().st_mtime == first and time.monotonic() < deadline:
            time.sleep(HEARTBEAT / 10)
        assert (tmp_path / "k.claim").stat().st_mtime > first
        assert child.poll() is None  # the holder lived on throughout
    finally:
        child.kill()
        child.wait()
