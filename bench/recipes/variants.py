"""Variants of recipes by name: `supcon[metric.weight=0.3]+crt`, `ce+crt[stage2.lr=0.15]`.

A bracket after a recipe's name sets fields of that recipe as `TABLE.FIELD=value` (several
separated by commas), each value read as TOML reads it (`0.3`, `2000`, `"geometric"`, `true`).
The registry builds the variant from the recipe file with those fields set, validates it like
a recipe file and names it canonically (paths sorted, values as TOML writes them, a setting
that leaves the recipe as it is left out), so its runs get ids of their own while a variant
that changes only stage 2 keeps its base's stage-1 artefact: cache keys hash a recipe's
content, not its name.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from typing import Any

from bench.core.errors import BenchError

SEARCH = "search"  # the recipe table of a sweep's ranges, never part of a variant
STAGE2_TABLE = "stage2"  # the one table of a stage-2 recipe
_BRACKETED = re.compile(r"(?P<base>[^\[\]]+)(?:\[(?P<body>[^\[\]]*)\])?")
_OUTSIDE_BRACKETS = r"(?![^\[]*\])"


def split_outside_brackets(text: str, separator: str) -> list[str]:
    """`text` split at each `separator` that stands outside brackets."""
    return re.split(re.escape(separator) + _OUTSIDE_BRACKETS, text)


def base_name(name: str) -> str:
    """`name` without its brackets: the recipes it varies (`supcon+crt` for
    `supcon[metric.weight=0.3]+crt`)."""
    return re.sub(r"\[[^\[\]]*\]", "", name)


def parse_part(part: str) -> tuple[str, dict[str, Any]]:
    """A recipe's name and the field values of its bracket: `supcon[metric.weight=0.3]` gives
    `("supcon", {"metric.weight": 0.3})`."""
    match = _BRACKETED.fullmatch(part.strip())
    if match is None:
        raise BenchError(
            f"{part!r}: write a variant as RECIPE[TABLE.FIELD=VALUE,...], e.g. "
            "supcon[metric.weight=0.3]+crt."
        )
    values: dict[str, Any] = {}
    body = match["body"]
    if body is not None:
        for item in split_outside_brackets(body, ","):
            path, equals, text = (s.strip() for s in item.partition("="))
            table, dot, field = path.partition(".")
            if not equals or not dot or not table or not field or not text:
                raise BenchError(
                    f"{part!r}: each setting in brackets is TABLE.FIELD=VALUE "
                    f"(e.g. metric.weight=0.3); got {item.strip()!r}."
                )
            if path in values:
                raise BenchError(f"{part!r} sets {path} twice; set it once.")
            values[path] = _toml_value(text, part)
    return match["base"].strip(), values


def _toml_value(text: str, where: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        raise BenchError(
            f"{where}: {text!r} is not a TOML value; write numbers as 0.3 or 2000, text in "
            'quotes ("geometric"), switches as true or false.'
        ) from None


def toml_text(value: Any) -> str:
    """`value` as TOML writes it (how a variant's name shows it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return repr(int(value))  # 3.0 and 3 name one variant (a float field reads 3 as 3.0)
    return repr(value)


def variant_name(base: str, values: dict[str, Any]) -> str:
    """The canonical name of `base` with `values` set: paths sorted, no bracket without any."""
    if not values:
        return base
    body = ",".join(f"{path}={toml_text(values[path])}" for path in sorted(values))
    return f"{base}[{body}]"


def set_fields(
    raw: dict[str, Any], values: dict[str, Any], where: str, tables: tuple[str, ...]
) -> dict[str, Any]:
    """A copy of a parsed recipe file with each `TABLE.FIELD` of `values` set (`tables`: those
    a recipe of its kind may hold, added when it lacks them) and its `[search]` table dropped.
    The parser of recipes then checks every field as in a file."""
    changed = copy.deepcopy(raw)
    changed.pop(SEARCH, None)
    for path, value in values.items():
        table, _, field = path.partition(".")
        if table not in tables:
            raise BenchError(
                f"{where}: {path!r} names no table a recipe of this kind holds "
                f"({', '.join(tables)})."
            )
        changed.setdefault(table, {})[field] = value
    return changed
