"""The representation-learning stage 1s of issue 23 end to end on the tiny set: each trains
once, composes with the stage-2 methods that need a head, and records its options."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_tiny

pytestmark = pytest.mark.slow

STAGE2 = ("crt", "lws", "tau", "posthoc-la")


@pytest.mark.parametrize("stage1", ["simclr", "mixup", "kcl", "bcl", "paco"])
def test_a_representation_learner_trains_once_and_feeds_every_head_based_stage2(
    tiny_project: Path, tmp_path: Path, stage1: str
) -> None:
    methods = ",".join(f"{stage1}+{stage2}" for stage2 in STAGE2)
    assert run_tiny(tmp_path / "r", methods) == 0
    table = pd.read_csv(tmp_path / "r" / "tiny" / "runs.csv").set_index("method")
    assert (table["status"] == "done").all() and len(table) == len(STAGE2)
    records = [
        json.loads(p.read_text()) for p in (tmp_path / "r" / "tiny" / "runs").glob("*/run.json")
    ]
    assert len({r["stage1"]["key"] for r in records}) == 1  # one stage 1, shared
    assert sum(not r["stage1"]["reused"] for r in records) == 1
    method = records[0]["config"]["method"]
    assert method["augment"]["views"] >= 1 and "training" not in method
