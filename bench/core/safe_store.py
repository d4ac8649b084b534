"""Cache entries that hold data only, verified before they are used.

An entry is `NAME.pt` (tensors and plain values written by `torch.save`) and `NAME.json` (a
description with the SHA-256 of the `.pt` bytes). Reading checks the digest, then unpickles
with `weights_only=True`, which builds tensors and plain containers and refuses anything
else, so no code stored in a cache file can run. A missing, mismatched or refused entry is
reported as `Unusable`: callers discard it and compute the value again.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.core.files import write_atomic, write_json_atomic

DATA, DESCRIPTION = ".pt", ".json"


@dataclass(frozen=True)
class Unusable:
    """Why an entry present on disk cannot be used (its files are removed by `discard`)."""

    path: Path
    reason: str

    def message(self) -> str:
        """One line for the log: what was found, and what happens instead."""
        return f"cache entry {self.path} is unusable ({self.reason}): discarded, computed anew"


def save(path: Path, payload: Any, description: dict[str, Any]) -> None:
    """Write `payload` to `path` (`.pt`) and its description with its digest (`.json`), each
    atomically; the description goes last, so an entry without one is never trusted."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    write_atomic(path, data)
    write_json_atomic(
        path.with_suffix(DESCRIPTION), {**description, "sha256": hashlib.sha256(data).hexdigest()}
    )


def description(path: Path) -> dict[str, Any] | None:
    """The description beside the entry `path`, or None when it is missing or unreadable."""
    try:
        loaded = json.loads(path.with_suffix(DESCRIPTION).read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def load(path: Path) -> Any | Unusable | None:
    """The payload of the entry `path`: None when there is none, `Unusable` when its
    description is missing, its digest does not match, or it holds anything but data."""
    if not path.exists():
        return None
    described = description(path)
    if described is None or "sha256" not in described:
        return Unusable(path, "no description with a digest; written by an older version?")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != described["sha256"]:
        return Unusable(path, "its content does not match its recorded SHA-256")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, TypeError, EOFError) as error:
        first = (str(error).strip().splitlines() or [""])[0].split(". ")[0]
        return Unusable(path, f"not plain tensors and data, refused: {first}")


def discard(path: Path) -> None:
    """Remove an entry's data and description."""
    path.unlink(missing_ok=True)
    path.with_suffix(DESCRIPTION).unlink(missing_ok=True)
