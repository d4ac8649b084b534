"""Digests of the code that decides the numbers a cache holds, found from the imports.

A cached artefact is only as valid as the code that made it. Rather than a hand-kept list of
modules, the set is the import closure of an entry module within `bench`, less a few named
modules that only move bytes or parse text (the parsed result is hashed into the key
itself). A new module imported by the training or data path therefore joins the digest by
itself. Each module counts by its syntax tree, so comments and formatting do not invalidate
a cache; the versions of the numeric libraries count too.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import re
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "bench"
TARGET = re.compile(r"(bench(?:\.\w+)+):\w+")  # `module:function`, as registries name builders

# Modules that take no part in computing numbers, with why (the import closure stops there).
PURE_IO = {
    "bench": "the package's version string",
    "bench.stage1.artefacts": "stores stage-1 artefacts; the key it is given decides what is read",
    "bench.core.claims": "coordinates processes sharing a folder; computes nothing",
    "bench.data.cache": "stores decoded tensors under the key it is given",
    "bench.data.download": "fetches files; their content is hashed by the readers",
    "bench.data.specs": "parses dataset specs; the parsed spec is part of every key",
    "bench.data.split": "draws splits; the split's digest, of its item ids, is part of every key",
    "bench.core.errors": "error messages",
    "bench.core.files": "atomic writes, hashing, TOML writing",
    "bench.core.layout": "project paths",
    "bench.recipes.methods": "parses recipes; the parsed recipe is part of every key",
    "bench.core.validation": "checks what users write; the checked values are part of every key",
}

# Entry points: stage-1 training (its objective, model, sampler, augmentation, weighting)
# and the data path (readers, decoding, resizing, the synthetic generator).
STAGE1_ENTRY = "bench.stage1.job"
DATA_ENTRY = "bench.data.loading"

LIBRARIES = ("torch", "torchvision", "pytorch-metric-learning", "numpy", "scikit-learn", "pillow")


def module_path(module: str, package_dir: Path) -> Path:
    """The source file of a `bench` module (a package's `__init__.py`)."""
    parts = module.split(".")[1:]
    folder = package_dir.joinpath(*parts)
    return folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py")


def _imported(module: str, tree: ast.Module, package_dir: Path) -> set[str]:
    """The `bench` modules a module imports (`from bench.x import name` counts `bench.x`, or
    `bench.x.name` when that is a module; a string `bench.x:function` counts `bench.x`), with
    the packages that contain them."""
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and (target := TARGET.fullmatch(node.value))
        ):
            # A builder named by import path (`bench.x:function`, the registry's targets) is
            # imported when it builds: its module counts as imported.
            names = [target.group(1)]
        for name in names:
            if (name == PACKAGE or name.startswith(PACKAGE + ".")) and module_path(
                name, package_dir
            ).exists():
                found.add(name)
    parents = {".".join(m.split(".")[:k]) for m in found for k in range(1, m.count(".") + 1)}
    return (found | parents) - {module}


def import_closure(entries: Iterable[str], package_dir: Path) -> list[str]:
    """Every `bench` module reachable from `entries` by imports, except `PURE_IO` ones."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen or module in PURE_IO:
            continue
        seen.add(module)
        tree = ast.parse(module_path(module, package_dir).read_text(encoding="utf-8"))
        todo += sorted(_imported(module, tree, package_dir))
    return sorted(seen)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries whose numerics a cached result depends on."""
    return {name: importlib.metadata.version(name) for name in LIBRARIES}


def code_digest(entries: tuple[str, ...], package_dir: Path | None = None) -> str:
    """A digest of the syntax trees of the import closure of `entries` and of the library
    versions."""
    package_dir = package_dir or Path(__file__).parents[1]
    digest = hashlib.sha256()
    for module in import_closure(entries, package_dir):
        tree = ast.parse(module_path(module, package_dir).read_text(encoding="utf-8"))
        digest.update(module.encode() + b"\0" + ast.dump(tree).encode() + b"\0")
    for name, version in library_versions().items():
        digest.update(f"{name}=={version}\0".encode())
    return digest.hexdigest()[:16]


@functools.cache
def stage1_code() -> str:
    """The digest of the code that trains stage 1 and loads its data (once per process)."""
    return code_digest((STAGE1_ENTRY, DATA_ENTRY))


@functools.cache
def data_code() -> str:
    """The digest of the code that reads and decodes datasets (once per process)."""
    return code_digest((DATA_ENTRY,))
