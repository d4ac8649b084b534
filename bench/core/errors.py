"""User-facing errors (the CLI prints their message on one line and exits with code 2), and
the failure of a run that diverged (recorded as failed; `bench run` then exits with code 1)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """A problem the user can fix (bad name, bad file, missing data); the message says how."""


class TrainingDiverged(Exception):
    """Training produced a non-finite loss or output: the run stops and is recorded as failed,
    with the stage, the epoch and the value; it never enters a table."""


class Interrupted(Exception):
    """Ctrl-C while jobs run elsewhere: the message says what became of them and how to follow
    them (the CLI exits with code 130)."""


def closest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to a misspelt `name`, best first (the one notion of "did you
    mean" of every error about an unknown name, value or key)."""
    return difflib.get_close_matches(name, list(known), n=n, cutoff=0.5)


def unknown_name(kind: str, name: str, known: Iterable[str], hint: str = "") -> BenchError:
    """An error for an unknown registry name that lists the closest known names."""
    known = sorted(known)
    close = closest(name, known)
    suggestion = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listing = f" Known: {', '.join(known)}." if len(known) <= 25 else ""
    return BenchError(
        f"unknown {kind} {name!r}.{suggestion}{listing}{(' ' + hint) if hint else ''}"
    )
