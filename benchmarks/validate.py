"""Whether the shipped defaults give a comparison people can cite: measured, not tested.

    nox -s validate                      (or: python benchmarks/validate.py [synthetic] [skin])

`synthetic`: the README's main job (`bench run --methods quick --dataset synthetic --seeds
0,1,2`) from an empty cache, checked against three criteria: the balanced accuracy's std over
the seeds is at most 3 points for at least 80 % of the methods; `rs-cb` and `ce+crt` each beat
`ce` by more than twice the larger of the two stds; the job ends within 10 minutes.

`skin`: `ce` and `ce+crt` at the shipped skin defaults over seeds 0, 1, 2 on the shared
HAM10000 (`$BENCH_DATA_ROOT` or ../shared/data/ham10000; skipped when absent), checked against
mean test balanced accuracy of at least 45 (`ce`) and 60 (`ce+crt`), the level a minimal
independent PyTorch implementation reaches on the same data.

Each check runs `bench` as a user would, in a temporary results folder and cache, prints the
summary and what passed, and the script exits 1 if any criterion failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

SHARED_HAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "ham10000"


def bench_run(folder: Path, *argv: str) -> tuple[pd.DataFrame, float]:
    """Run `bench run ARGV` with its own results folder and cache; the runs and the seconds."""
    env = {**os.environ, "BENCH_CACHE_DIR": str(folder / "cache")}
    command = ["bench", "run", *argv, "--results-dir", str(folder / "results"), "--no-progress"]
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    seconds = time.perf_counter() - start
    (runs,) = list((folder / "results").glob("*/runs.csv"))
    return pd.read_csv(runs), seconds


def balanced_accuracy(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (in points) of test balanced accuracy per method, over its runs."""
    done = runs[runs["status"] == "done"]
    table = done.groupby("method", sort=False)["balanced_accuracy"].agg(["mean", "std", "size"])
    return table.assign(mean=100 * table["mean"], std=100 * table["std"])


def check(name: str, passed: bool, detail: str) -> bool:
    """Print one criterion's outcome."""
    print(f"  [{'pass' if passed else 'FAIL'}] {name}: {detail}")
    return passed


def synthetic(folder: Path) -> bool:
    """The main job's criteria."""
    runs, seconds = bench_run(
        folder, "--methods", "quick", "--dataset", "synthetic", "--seeds", "0,1,2"
    )
    table = balanced_accuracy(runs)
    print(table.round(1).to_string())
    steady = table["std"] <= 3
    results = [
        check(
            "std <= 3 points for >= 80 % of the methods",
            steady.mean() >= 0.8,
            f"{steady.sum()} of {len(table)} (above: "
            f"{', '.join(f'{m} {s:.1f}' for m, s in table['std'][~steady].items()) or 'none'})",
        )
    ]
    for method in ("rs-cb", "ce+crt"):
        gap = table.loc[method, "mean"] - table.loc["ce", "mean"]
        bound = 2 * max(table.loc[method, "std"], table.loc["ce", "std"])
        results.append(
            check(f"{method} beats ce", gap > bound, f"+{gap:.1f} vs 2 × std {bound:.1f}")
        )
    results.append(check("main job within 10 minutes", seconds <= 600, f"{seconds:.0f} s"))
    return all(results)


def skin(folder: Path) -> bool:
    """The HAM10000 levels of the reference implementation."""
    root = Path(os.environ.get("BENCH_DATA_ROOT") or SHARED_HAM)
    if not root.is_dir():
        print(f"skin: skipped, no HAM10000 at {root}")
        return True
    runs, seconds = bench_run(
        folder,
        "--methods", "ce,ce+crt", "--dataset", "skin", "--data-root", str(root),
        "--seeds", "0,1,2", "--no-report",
    )  # fmt: skip
    table = balanced_accuracy(runs)
    print(table.round(1).to_string())
    print(f"  ({seconds:.0f} s)")
    return all(
        [
            check("ce >= 45 BAcc", table.loc["ce", "mean"] >= 45, f"{table.loc['ce', 'mean']:.1f}"),
            check(
                "ce+crt >= 60 BAcc",
                table.loc["ce+crt", "mean"] >= 60,
                f"{table.loc['ce+crt', 'mean']:.1f}",
            ),
        ]
    )


def main(argv: list[str]) -> int:
    checks = {"synthetic": synthetic, "skin": skin}
    chosen = argv or list(checks)
    outcomes = []
    for name in chosen:
        print(f"== {name}", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            outcomes.append(checks[name](Path(folder)))
    return 0 if all(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
