"""The stage-1 cache key covers the code that decides stage 1's numbers, found by imports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.core import code_digest
from bench.core.code_digest import (
    DATA_ENTRY,
    PURE_IO,
    STAGE1_ENTRY,
    import_closure,
    module_path,
)
from bench.core.code_digest import (
    code_digest as digest_of,
)

PACKAGE = Path(code_digest.__file__).parents[1]
ENTRIES = (STAGE1_ENTRY, DATA_ENTRY)


@pytest.fixture(scope="module")
def closure() -> list[str]:
    return import_closure(ENTRIES, PACKAGE)


def test_the_closure_holds_the_training_and_data_path_and_no_pure_io(closure: list[str]) -> None:
    for module in (
        "bench.stage1.job",  # objective building, DRW epoch rounding: left out by the old list
        "bench.stage1.training",
        "bench.components.losses",
        "bench.components.metric_losses",
        "bench.components.models",
        "bench.components.samplers",
        "bench.stage1.augment",
        "bench.components.weighting",
        "bench.data.decode",
        "bench.data.resize",
        "bench.data.synthetic",
        "bench.data.formats.ham10000",
    ):
        assert module in closure
    assert not set(closure) & set(PURE_IO)
    assert "bench.report.build" not in closure and "bench.run.runner" not in closure


@pytest.mark.slow
def test_editing_any_module_of_the_closure_changes_the_key(
    tmp_path: Path, closure: list[str]
) -> None:
    copy = tmp_path / "bench"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    original = digest_of(ENTRIES, copy)
    assert original == digest_of(ENTRIES, PACKAGE)
    for module in closure:
        path = module_path(module, copy)
        source = path.read_text()
        path.write_text(source + "\n_EDITED = 1\n")
        assert digest_of(ENTRIES, copy) != original, module
        path.write_text(source + "\n# a comment or reformatting changes no number\n")
        assert digest_of(ENTRIES, copy) == original, module
        path.write_text(source)


def test_a_new_module_imported_by_the_training_path_joins_the_key(tmp_path: Path) -> None:
    copy = tmp_path / "bench"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "stage1" / "schedules.py").write_text("WARMUP = 1\n")
    training = copy / "stage1" / "training.py"
    training.write_text("from bench.stage1.schedules import WARMUP\n" + training.read_text())
    assert "bench.stage1.schedules" in import_closure(ENTRIES, copy)
    before = digest_of(ENTRIES, copy)
    (copy / "stage1" / "schedules.py").write_text("WARMUP = 2\n")
    assert digest_of(ENTRIES, copy) != before


def test_library_versions_are_part_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = digest_of(ENTRIES)
    real = code_digest.library_versions
    monkeypatch.setattr(code_digest, "library_versions", lambda: {**real(), "torch": "9.9"})
    assert digest_of(ENTRIES) != before
