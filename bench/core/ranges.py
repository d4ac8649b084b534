"""Intervals of valid numbers, declared with each registered parameter
(`bench.components.catalogue`) and checked when a recipe is parsed, so a bad value is a
one-line error naming the file and field before any training (the way scikit-learn declares
parameter constraints beside each estimator)."""

from __future__ import annotations

import math
from dataclasses import dataclass


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
