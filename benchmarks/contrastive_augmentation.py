"""Why the contrastive stage 1s fall below cross-entropy on `synthetic`: each one's recipe at
another `[augment] strength`, everything else as shipped.

    python benchmarks/contrastive_augmentation.py                       # seed 0, ~10 min
    python benchmarks/contrastive_augmentation.py --seeds 0,1,2 --strengths geometric

Each recipe is copied into a scratch methods folder as `<name>-<strength>` with only its
strength changed, run with cRT and LWS (`bench run`'s runner, `--jobs` workers of one thread),
and its test balanced accuracy printed beside the shipped recipe's. `strong` is the recipes'
own (SimCLR's colour distortion); `geometric` keeps its crops, flips and rotations without
the colour distortion; `standard` is the shared augmentation of every other stage 1.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from bench.core.layout import project_root
from bench.execution.executors import ExecutorOptions
from bench.experiment.conditions import Conditions
from bench.recipes.methods import AUGMENT_STRENGTHS
from bench.run.runner import RunOptions, run_benchmark


def _variants(methods: list[str], strengths: list[str], folder: Path) -> list[str]:
    """Write each recipe at each strength into `folder` (a copy of methods/); their names."""
    shutil.copytree(project_root() / "methods", folder, dirs_exist_ok=True)
    names = []
    for method in methods:
        recipe = (folder / f"{method}.toml").read_text()
        if 'strength = "strong"' not in recipe:
            raise SystemExit(f"{method}: its recipe asks for no strong augmentation")
        for strength in strengths:
            name = f"{method}-{strength}"
            text = re.sub(r'strength = "strong"', f'strength = "{strength}"', recipe)
            (folder / f"{name}.toml").write_text(text)
            names += [f"{name}+crt", f"{name}+lws"]
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="kcl,paco,simclr,bcl")
    parser.add_argument("--strengths", default=",".join(AUGMENT_STRENGTHS))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--results-dir", type=Path, default=Path("results-augmentation"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        names = _variants(
            args.methods.split(","), args.strengths.split(","), Path(scratch) / "methods"
        )
        outcome = run_benchmark(
            RunOptions(
                dataset="synthetic",
                methods=",".join(names),
                seeds=tuple(int(s) for s in args.seeds.split(",")),
                conditions=Conditions(),
                results_dir=args.results_dir,
                report=False,
                methods_dir=Path(scratch) / "methods",
            ),
            ExecutorOptions(jobs=args.jobs, threads=1),
        )
    runs = pd.read_csv(args.results_dir / "synthetic" / "runs.csv")
    runs = runs[runs["method"].isin(names) & (runs["status"] == "done")]
    table = runs.groupby("method")["balanced_accuracy"].agg(["count", "mean", "std"])
    table[["mean", "std"]] *= 100
    print(table.round(1).to_string())
    if outcome.failures:
        raise SystemExit(f"{len(outcome.failures)} run(s) failed, first {outcome.failures[0]}")


if __name__ == "__main__":
    main()
