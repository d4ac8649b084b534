"""`bench run --jobs 2` against `--jobs 1` on the same work, and what a job costs beyond its
training.

Both commands start from an empty results folder and cache, on the same runs (5 methods, 4
stage-1 trainings, short epochs: an even load for 2 workers). `--jobs 1` runs them in the
submitting process with torch's threads; `--jobs 2` in two worker processes with the cores
shared out. On 2 cores expect a ratio near 1: the point is that the machinery costs little.
A job's overhead is measured from its ledger: its seconds inside the worker not spent
training (loading the cached images, re-deriving the run ids, writing), plus the seconds a
fresh worker process takes to import.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

WORK = [
    "run", "--dataset", "synthetic", "--methods", "ce,ce+crt,rs-cb,ldam-drw,drw", "--seeds", "0",
    "--epochs", "6", "--device", "cpu", "--no-progress", "--no-report",
]  # fmt: skip


def timed_run(folder: Path, *extra: str) -> float:
    """Wall seconds of `bench run` on WORK into `folder` (fresh results and cache)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bench.cli.main", *WORK, "--results-dir", str(folder / "results"),
         "--cache-dir", str(folder / "cache"), *extra],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - started


def job_overheads(results: Path) -> list[tuple[float, float]]:
    """(seconds in the worker outside training, seconds training) of each job in the ledger."""
    found = []
    for path in results.glob("synthetic/jobs/*/task-*.result.json"):
        value = json.loads(path.read_text())["value"]
        found.append((value["wall_s"] - value["training_s"], value["training_s"]))
    return found


def import_seconds() -> float:
    """What starting a worker process costs: Python and the imports of a job."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import bench.run.work, bench.execution.jobs"], check=True
    )
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        one = timed_run(Path(scratch) / "one")
        two = timed_run(Path(scratch) / "two", "--jobs", "2")
        jobs = job_overheads(Path(scratch) / "two" / "results")
    startup = min(import_seconds() for _ in range(3))
    outside, training = mean(o for o, _ in jobs), mean(t for _, t in jobs)
    print(
        f"bench run, 5 methods (4 stage-1 trainings): --jobs 1 {one:.1f} s, --jobs 2 {two:.1f} s"
        f" -> jobs 1 / jobs 2 = {one / two:.2f}x"
    )
    print(
        f"per job ({len(jobs)} jobs): {outside:.2f} s in the worker outside training + "
        f"{startup:.2f} s to start its process, against {training:.1f} s of training "
        f"-> overhead {(outside + startup) / (outside + startup + training):.1%} of a job"
    )


if __name__ == "__main__":
    main()
