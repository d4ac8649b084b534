"""What a format reader found on disk: the item table, its content digest, how to decode it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch


@dataclass(frozen=True)
class Decoded:
    """Decoded images of the kept rows, which rows were kept, and what was skipped (and why)."""

    images: torch.Tensor
    kept: np.ndarray
    skipped: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Source:
    """A dataset located in one format: validated item table (see `bench.data.table`), class
    names, a digest of the files that define it, the decoder (image size, skip bad files,
    show progress) -> Decoded, and format-specific facts for `bench data info`."""

    format: str
    root: Path
    table: pd.DataFrame
    class_names: tuple[str, ...]
    content: str
    decode: Callable[[int, bool, bool], Decoded]
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reader:
    """A format read from disk (`bench.data.formats`): `detect(root, params)` says whether
    `root` holds its data, `read(root, classes, params, name)` reads the item table."""

    detect: Callable[[Path, dict[str, Any]], bool]
    read: Callable[[Path, tuple[str, ...], dict[str, Any], str], Source]
