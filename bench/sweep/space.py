"""Search spaces: the `[search]` table of a recipe, and recipes with a trial's values applied.

A `[search]` key is a dotted path to a field of the same recipe (`metric.weight`,
`stage2.lr`); its value is a range `{low, high}` (floats, or integers when both bounds are
integers), optionally `log = true` or `step`, or `{choices = [...]}`. A composed method
`stage1+stage2` searches the union of both recipes' spaces (their tables never share a name).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from bench.core.errors import BenchError
from bench.core.validation import read_toml
from bench.recipes.methods import (
    STAGE1_TABLES,
    STAGE2_TABLES,
    Method,
    Recipe,
    Stage2Recipe,
    field_range,
    parse_recipe,
    parse_stage2_recipe,
)
from bench.recipes.variants import SEARCH, set_fields


@dataclass(frozen=True)
class Dimension:
    """One tunable field: its dotted path and its Optuna distribution."""

    path: str
    distribution: optuna.distributions.BaseDistribution


def _dimension(path: str, spec: Any, where: str, recipe: dict[str, Any]) -> Dimension:
    """Validate one `[search]` entry against the recipe's fields."""
    table, _, field = path.partition(".")
    if not field or not isinstance(recipe.get(table), dict) or field not in recipe[table]:
        tables = [k for k, v in recipe.items() if isinstance(v, dict)]
        raise BenchError(
            f"{where}: [search] key {path!r} must name a field of the recipe as "
            f"TABLE.FIELD, with TABLE one of {', '.join(tables)}."
        )
    if not isinstance(spec, dict):
        raise BenchError(
            f"{where}: [search] {path!r} must be a table, e.g. {{low = 0.1, high = 1}}."
        )
    distribution: optuna.distributions.BaseDistribution
    if "choices" in spec:
        if set(spec) != {"choices"} or not spec["choices"]:
            raise BenchError(f"{where}: [search] {path!r}: choices = [...] stands alone.")
        distribution = optuna.distributions.CategoricalDistribution(spec["choices"])
    else:
        unknown = sorted(set(spec) - {"low", "high", "log", "step"})
        low: Any = spec.get("low")
        high: Any = spec.get("high")
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
        if unknown or not numbers or low >= high or not isinstance(spec.get("log", False), bool):
            raise BenchError(
                f"{where}: [search] {path!r} needs numbers low < high (and optionally log, "
                f"step); got {spec!r}."
            )
        log, step = bool(spec.get("log", False)), spec.get("step")
        try:
            if isinstance(low, int) and isinstance(high, int):
                distribution = optuna.distributions.IntDistribution(
                    low, high, log=log, step=step or 1
                )
            else:
                distribution = optuna.distributions.FloatDistribution(low, high, log=log, step=step)
        except (ValueError, ZeroDivisionError) as error:
            raise BenchError(f"{where}: [search] {path!r}: {error}") from error
    valid = field_range(recipe, table, field)
    values: list[Any] = (
        list(distribution.choices)
        if isinstance(distribution, optuna.distributions.CategoricalDistribution)
        else [spec.get("low"), spec.get("high")]
    )
    reached = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if valid is not None and any(v not in valid for v in reached):
        raise BenchError(
            f"{where}: [search] {path!r} reaches {reached}, outside the field's valid values "
            f"({valid})."
        )
    return Dimension(path, distribution)


def _raw(path: Path | None) -> dict[str, Any]:
    if path is None:
        raise BenchError("this method has no recipe file to read a search space from.")
    return read_toml(path)


def search_space(method: Method, override: Path | None = None) -> list[Dimension]:
    """The dimensions of `method`: its recipes' `[search]` tables, or the `[search]` table of
    `override` (keys of either recipe)."""
    recipes = [method.stage1.path] + ([method.stage2.path] if method.stage2 else [])
    raws: list[tuple[Path | None, dict[str, Any]]] = [(p, _raw(p)) for p in recipes]
    merged = {k: v for path, raw in raws for k, v in raw.items() if k != SEARCH}
    if override is not None:
        tables: list[tuple[Path | None, Any]] = [(override, read_toml(override).get(SEARCH, {}))]
    else:
        tables = [(path, raw.get(SEARCH, {})) for path, raw in raws]
    for where, table in tables:
        if not isinstance(table, dict):
            raise BenchError(f"{where}: [search] must be a table of FIELD = {{...}} entries.")
    space = [
        _dimension(key, spec, str(where), merged)
        for where, table in tables
        for key, spec in table.items()
    ]
    if not space:
        problem = (
            f"{override} has an empty [search] table"
            if override
            else f"{method.name}: no [search] table in its recipe(s)"
        )
        raise BenchError(f"{problem}; add entries (see docs/sweeps.md) or give --space FILE.")
    return space


def applied(method: Method, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The parsed TOML of `method`'s recipe file(s) with each dotted-path value set and the
    `[search]` table dropped: what a tuned recipe file holds."""
    parts: list[tuple[Recipe | Stage2Recipe, tuple[str, ...]]] = [(method.stage1, STAGE1_TABLES)]
    if method.stage2:
        parts.append((method.stage2, STAGE2_TABLES))
    known = {table for _, tables in parts for table in tables}
    if strangers := [path for path in values if path.partition(".")[0] not in known]:
        raise BenchError(f"{method.name}: {strangers[0]!r} names no table of its recipe(s).")
    return [
        set_fields(
            _raw(recipe.path),
            {path: value for path, value in values.items() if path.partition(".")[0] in tables},
            str(recipe.path),
            tables,
        )
        for recipe, tables in parts
    ]


def apply(method: Method, values: dict[str, Any]) -> Method:
    """`method` with `values` set in its recipes, validated like a recipe file."""
    raws = applied(method, values)
    assert method.stage1.path is not None  # `applied` read it
    stage1 = parse_recipe(method.stage1.path, raws[0])
    if method.stage2 is None or method.stage2.path is None:
        return Method(stage1)
    return Method(stage1, parse_stage2_recipe(method.stage2.path, raws[1]))
