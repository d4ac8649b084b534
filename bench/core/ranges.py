"""Valid ranges declared beside a builder's keyword parameters, read when a recipe is parsed.

A builder writes `gamma: Annotated[float, Range(low=0)] = 1.0`; `declared_ranges(builder)`
finds every such range, and the recipe reader checks each value against it, so a bad value
is a one-line error naming the file and field before any training (the way scikit-learn
declares parameter constraints beside the estimator).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """An interval of numbers: `low` and `high` bounds (None: unbounded), each inclusive
    unless marked open. Infinite and NaN values are never in a range."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(parts) or "finite"


POSITIVE = Range(low=0, low_open=True)
NON_NEGATIVE = Range(low=0)
FRACTION = Range(low=0, high=1, high_open=True)  # [0, 1)


def declared_ranges(builder: Callable[..., Any]) -> dict[str, Range]:
    """The `Range` declared on each annotated parameter of `builder`."""
    hints = typing.get_type_hints(builder, include_extras=True)
    return {
        name: meta
        for name, hint in hints.items()
        if typing.get_origin(hint) is typing.Annotated
        for meta in hint.__metadata__
        if isinstance(meta, Range)
    }
