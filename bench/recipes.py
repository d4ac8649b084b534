"""Method recipes: one TOML file per stage-1 recipe in `methods/`, and named method lists.

A recipe composes registered pieces — a loss, an optional class weighting (optionally deferred,
as in DRW), a sampler — each with its parameters, so new methods are data, not code.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError, unknown_name
from bench.files import read_toml
from bench.layout import methods_dir
from bench.losses import LOSSES
from bench.samplers import SAMPLERS
from bench.weighting import WEIGHTINGS

LISTS_FILE = "_lists.toml"
RECIPE_KEYS = {"description", "reference", "loss", "weighting", "sampler"}


@dataclass(frozen=True)
class Component:
    """A registered piece by name with the keyword parameters the recipe gives it."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Name and parameters as one flat mapping (recorded in results)."""
        return {"name": self.name, **self.params}


@dataclass(frozen=True)
class Recipe:
    """A stage-1 recipe: what loss, class weighting and sampler train the network."""

    name: str
    description: str
    reference: str
    loss: Component
    sampler: Component
    weighting: Component | None = None
    weighting_start: float = 0.0
    path: Path | None = None

    @property
    def family(self) -> str:
        """The comparison group this method belongs to in tables."""
        return "one-stage"

    def resolved(self) -> dict[str, Any]:
        """Everything about the recipe that changes a result (hashed into run ids)."""
        return {
            "loss": self.loss.as_dict(),
            "weighting": self.weighting.as_dict() if self.weighting else None,
            "weighting_start": self.weighting_start,
            "sampler": self.sampler.as_dict(),
        }

    def summary(self) -> str:
        """One line: the pieces and their parameters."""
        parts = [_describe(self.loss)]
        if self.weighting:
            when = f" from {self.weighting_start:.0%} of epochs" if self.weighting_start else ""
            parts.append(f"weights {_describe(self.weighting)}{when}")
        if self.sampler.name != "instance":
            parts.append(f"sampler {_describe(self.sampler)}")
        return "; ".join(parts)


def _describe(component: Component) -> str:
    args = ", ".join(f"{k}={v}" for k, v in component.params.items())
    return f"{component.name}({args})" if args else component.name


def _component(
    raw: Any,
    table: str,
    registry: dict[str, Callable[..., Any]],
    path: Path,
    extra: tuple[str, ...] = (),
) -> tuple[Component, dict[str, Any]]:
    """Validate one `[table]` against the registered builder's keyword-only parameters."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise BenchError(
            f"{path}: [{table}] needs a string field 'name' (one of {', '.join(sorted(registry))})."
        )
    name = raw["name"]
    if name not in registry:
        raise BenchError(f"{path}: [{table}] {unknown_name(table, name, registry)}")
    signature = inspect.signature(registry[name])
    accepted = {
        p.name: p.default
        for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    params, extras = {}, {}
    for key, value in raw.items():
        if key == "name":
            continue
        if key in extra:
            extras[key] = value
        elif key not in accepted:
            allowed = ", ".join([*accepted, *extra]) or "none"
            raise BenchError(
                f"{path}: [{table}] field {key!r} is not a parameter of {name!r} "
                f"(accepted: {allowed})."
            )
        elif not isinstance(value, int | float) or isinstance(value, bool):
            raise BenchError(f"{path}: [{table}] field {key!r} must be a number, got {value!r}.")
        else:
            params[key] = float(value) if isinstance(accepted[key], float) else value
    defaults = {k: v for k, v in accepted.items() if v is not inspect.Parameter.empty}
    return Component(name, {**defaults, **params}), extras


def parse_recipe(path: Path) -> Recipe:
    """Read and validate one recipe file; errors name the file and the field."""
    raw = read_toml(path)
    unknown = sorted(set(raw) - RECIPE_KEYS)
    if unknown:
        raise BenchError(
            f"{path}: unknown field(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(RECIPE_KEYS))}."
        )
    if not isinstance(raw.get("description"), str):
        raise BenchError(f"{path}: field 'description' (a one-line string) is required.")
    loss, _ = _component(raw.get("loss"), "loss", LOSSES, path)
    sampler, _ = _component(raw.get("sampler", {"name": "instance"}), "sampler", SAMPLERS, path)
    weighting, start = None, 0.0
    if "weighting" in raw:
        weighting, extras = _component(
            raw["weighting"], "weighting", WEIGHTINGS, path, extra=("start",)
        )
        start = extras.get("start", 0.0)
        if not isinstance(start, int | float) or not 0 <= start < 1:
            raise BenchError(
                f"{path}: [weighting] field 'start' must be a fraction of the "
                f"epochs in [0, 1), got {start!r}."
            )
    return Recipe(
        name=path.stem,
        description=raw["description"],
        reference=str(raw.get("reference", "")),
        loss=loss,
        sampler=sampler,
        weighting=weighting,
        weighting_start=float(start),
        path=path,
    )


class MethodRegistry:
    """The recipes in a methods folder, by name, and its named lists (such as `all`)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or methods_dir()
        self.recipes = {
            p.stem: parse_recipe(p)
            for p in sorted(self.folder.glob("*.toml"))
            if not p.name.startswith("_")
        }
        lists_path = self.folder / LISTS_FILE
        self.lists: dict[str, list[str]] = read_toml(lists_path) if lists_path.exists() else {}
        for list_name, members in self.lists.items():
            for member in members:
                if member not in self.recipes:
                    raise BenchError(
                        f"{lists_path}: list {list_name!r} names "
                        f"{unknown_name('method', member, self.recipes)}"
                    )

    def get(self, name: str) -> Recipe:
        """The recipe called `name`."""
        if name not in self.recipes:
            raise unknown_name(
                "method", name, self.recipes, hint="`bench list methods` shows them all."
            )
        return self.recipes[name]

    def expand(self, spec: str) -> list[Recipe]:
        """Recipes for a comma-separated mix of method names and list names, in order, once."""
        names: list[str] = []
        for item in (s.strip() for s in spec.split(",")):
            if not item:
                continue
            for name in self.lists.get(item, [item]):
                if name not in names:
                    names.append(name)
        if not names:
            raise BenchError("no methods given; try --methods all or `bench list methods`.")
        return [self.get(name) for name in names]
