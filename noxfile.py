"""Developer sessions. They run in the current environment (torch is large: no per-session
virtualenvs); install it first with `pip install -e ".[dev]"`."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["tests", "lint", "typecheck"]
LINTED = ("bench", "tests", "benchmarks", "docs/hooks", "noxfile.py")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (tiny CPU end-to-end runs included)."""
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over the package."""
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, built in strict mode (a broken link or anchor, or a page missing
    from the navigation, fails it) into site/, which git ignores. The command-line reference is
    rendered from the argument parser as it builds (docs/hooks/cli_reference.py)."""
    quiet = {"PYTHONDONTWRITEBYTECODE": "1", "NO_MKDOCS_2_WARNING": "1"}
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs, env=quiet)


@nox.session
def perf(session: nox.Session) -> None:
    """Speed benchmarks, as ratios against baselines measured in the same run (the second,
    --jobs 2 against --jobs 1, takes a few minutes)."""
    session.run("python", "benchmarks/perf.py")
    session.run("python", "benchmarks/workers.py")


@nox.session
def validate(session: nox.Session) -> None:
    """Whether the shipped defaults meet their measured criteria (main job, HAM10000 levels,
    MedMNIST v2's published accuracy); takes an hour or more. `nox -s validate -- synthetic`
    runs one check (`-- blood` one MedMNIST set)."""
    session.run("python", "benchmarks/validate.py", *session.posargs)
