"""The layers of docs/architecture.md hold: a sub-package imports only from its own layer and
the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import bench

# Top to bottom, as the architecture page draws them.
LAYERS = (
    ("cli",),
    ("run", "sweep", "study"),
    ("report", "compare"),
    ("results", "execution"),
    ("experiment",),
    ("recipes", "stage1", "stage2"),
    ("data", "components"),
    ("core",),
)
LEVEL = {package: depth for depth, layer in enumerate(LAYERS) for package in layer}
PACKAGE = Path(bench.__file__).parent


def _imported(path: Path) -> set[str]:
    """The `bench` sub-packages a module imports (at any depth of its code)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("bench.") and "." in n}
    return found


def test_every_sub_package_has_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LEVEL)


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    upward = [
        f"{path.relative_to(PACKAGE.parent)} imports bench.{target}"
        for path in sorted(PACKAGE.glob("*/**/*.py"))
        for target in _imported(path)
        if LEVEL[target] < LEVEL[path.relative_to(PACKAGE).parts[0]]
    ]
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from bench.report.build import build_report\n")
    assert _imported(module) == {"report"}
