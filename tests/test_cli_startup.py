"""`bench --help` answers at once: building the parser imports none of the heavy libraries a
command imports when it runs (timed in `nox -s perf`, not here)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "torchvision", "scipy", "optuna", "pandas", "sklearn", "baycomp")


def test_the_command_line_parses_without_importing_heavy_libraries() -> None:
    probe = (
        "import sys\n"
        "from bench.cli.main import build_parser\n"
        "build_parser().parse_args(['run', '--methods', 'ce', '--jobs', '2'])\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


def test_every_command_is_listed_in_help() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "bench.cli.main", "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0
    for command in ("run", "report", "sweep", "status", "compare", "list", "data", "cache"):
        assert command in shown.stdout
