"""The study the docs publish is re-derived from its committed archive alone: its tables and
verdict to the byte, its figures by the numbers they plot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.cli.main import main

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "docs" / "study" / "paper-cpu"


@pytest.mark.slow
def test_the_published_study_comes_from_its_committed_archive(tmp_path: Path) -> None:
    datasets = (PUBLISHED / "compared.txt").read_text().strip()
    study = REPO / "studies" / "paper-cpu.toml"
    argv = ["compare", "--study", str(study), "--datasets", datasets]
    assert main([*argv, "--results-dir", str(tmp_path)]) == 0  # no results: the archive only
    derived = tmp_path / "compare"
    tables = ["verdict.md", "ranks.md", "pairs.md", "metric_ranks.md", "metric_means.md"]
    # What the CD diagram and the pairs figure plot, and the other metrics' numbers.
    numbers = ["ranks.csv", "pairs.csv", "metric_ranks.csv", "metric_means.csv"]
    if (PUBLISHED / "tuning.md").exists():  # the tuning sensitivity, once its dataset is in
        tables += ["tuning.md", "tuning_variants.md"]
        numbers += ["tuning.csv", "tuning_variants.csv"]
    assert sorted(p.name for p in derived.glob("*.md")) == sorted(
        p.name for p in PUBLISHED.glob("*.md") if p.name != "progress.md"
    )
    for name in tables:
        assert (derived / name).read_text() == (PUBLISHED / name).read_text(), name
    for name in numbers:
        pd.testing.assert_frame_equal(pd.read_csv(derived / name), pd.read_csv(PUBLISHED / name))
