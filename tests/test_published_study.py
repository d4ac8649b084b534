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
    for name in ("verdict.md", "ranks.md", "pairs.md"):
        assert (derived / name).read_text() == (PUBLISHED / name).read_text(), name
    for name in ("ranks.csv", "pairs.csv"):  # what the CD diagram and the pairs figure plot
        pd.testing.assert_frame_equal(pd.read_csv(derived / name), pd.read_csv(PUBLISHED / name))
