"""Publish a study's comparison in the docs, derived from its committed archive alone.

    python benchmarks/publish_study.py studies/paper-cpu.toml --datasets synthetic,retina

Runs `bench compare --study FILE` in an empty results folder, so that only the archive
(`studies/<name>/`) feeds it, and copies its tables (Markdown and CSV), figures and verdict to
`docs/study/<name>/`, with the datasets compared in `compared.txt`. The docs include those files;
tests/test_published_study.py derives them again from the archive and checks they are the same
(the figures by the numbers they plot, `ranks.csv` and `pairs.csv`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.study.file import load_study

PUBLISHED = ("verdict.md", "ranks.md", "pairs.md", "ranks.csv", "pairs.csv")
# The other metrics: mean ranks by metric, and every method's means by dataset and metric.
METRICS = ("metric_ranks.md", "metric_ranks.csv", "metric_means.md", "metric_means.csv")
# The tuning sensitivity's tables, written when the study's tuning dataset is compared.
TUNING = ("tuning.md", "tuning.csv", "tuning_variants.md", "tuning_variants.csv")
FIGURES = ("cd_diagram.png", "pairs.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--datasets", help="a part of the study's datasets (default: all)")
    args = parser.parse_args()
    study = load_study(args.study)
    datasets = args.datasets or ",".join(d.name for d in study.datasets)
    target = Path(__file__).resolve().parents[1] / "docs" / "study" / study.name
    with tempfile.TemporaryDirectory() as empty:
        argv = ["compare", "--study", str(args.study), "--datasets", datasets]
        # Its own process: the command's session ends (and its claims with it) before the
        # scratch folder is removed.
        done = subprocess.run(
            [sys.executable, "-m", "bench.cli.main", *argv, "--results-dir", empty]
        )
        if done.returncode:
            return done.returncode
        target.mkdir(parents=True, exist_ok=True)
        for name in (*PUBLISHED, *METRICS, *FIGURES):
            shutil.copyfile(Path(empty) / "compare" / name, target / name)
        for name in TUNING:
            written = Path(empty) / "compare" / name
            if written.exists():
                shutil.copyfile(written, target / name)
            else:
                (target / name).unlink(missing_ok=True)
    (target / "compared.txt").write_text(datasets + "\n")
    print(f"published in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
