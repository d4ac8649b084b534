"""Where the project's data folders are: the method and dataset registries, results, cache."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout that holds `bench/`, `methods/` and `datasets/` (editable install)."""
    return Path(os.environ.get("BENCH_HOME", Path(__file__).resolve().parents[2]))


def methods_dir() -> Path:
    """The folder of method recipes (`methods/*.toml`)."""
    return project_root() / "methods"


def datasets_dir() -> Path:
    """The folder of dataset specs (`datasets/*.toml`)."""
    return project_root() / "datasets"


def default_results_dir() -> Path:
    """Where runs are written unless `--results-dir` says otherwise."""
    return project_root() / "results"


def cache_root(given: Path | None = None) -> Path:
    """The cache folder: `given` (the command line's `--cache-dir`), else `$BENCH_CACHE_DIR`,
    else `$XDG_CACHE_HOME/medlt-bench`, else ~/.cache/medlt-bench. Read once by a command and
    passed on explicitly from there."""
    if given is not None:
        return given
    if env := os.environ.get("BENCH_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "medlt-bench"
