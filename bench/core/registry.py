"""One registry for every family of components a recipe or a setting names by string.

torchvision's `get_model` / `list_models` idea, with what a recipe needs to know *before*
building anything: each entry names its builder by import path (`module:function`, imported
only when the component is built), declares the keyword parameters a recipe may set (default,
valid range or choices) and carries typed metadata (a loss's learning-rate multiplier, whether
a sampler re-balances, a backbone's smallest input). So recipes are parsed, checked and listed
without importing torch, and the side tables that used to shadow each registry are gone. A
test checks every builder's keyword-only parameters against its entry.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bench.core.errors import unknown_name
from bench.core.ranges import Range
from bench.core.validation import Field

M = TypeVar("M")


@dataclass(frozen=True)
class Param:
    """A builder's keyword parameter as a recipe may set it: its default, and its valid
    `range` (numbers) or `choices` (text); a value is of the default's type (an integer is
    accepted for a float)."""

    default: Any
    range: Range | None = None
    choices: tuple[str, ...] = ()

    def check(self, value: Any, where: str) -> Any:
        """`value` checked as a `bench.core.validation.Field` of this parameter."""
        valid = self.range or Range()
        field = Field(
            type(self.default),
            valid.low,
            valid.high,
            choices=self.choices,
            low_open=valid.low_open,
            high_open=valid.high_open,
        )
        return field.check(value, where)


@dataclass(frozen=True)
class Entry(Generic[M]):
    """One registered component: its name, its builder's import path, its parameters and its
    metadata."""

    name: str
    target: str
    params: Mapping[str, Param] = field(default_factory=dict)
    meta: M | None = None

    def defaults(self) -> dict[str, Any]:
        """Every parameter at its default."""
        return {name: param.default for name, param in self.params.items()}


class Registry(Generic[M]):
    """The components of one family (`loss`, `sampler`, `backbone`, ...) by name, in the
    order they were added; a name is added once."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, Entry[M]] = {}

    def add(self, name: str, target: str, meta: M | None = None, **params: Param) -> None:
        """Register `name`, built by the function at `target` (`module:function`)."""
        if name in self._entries:
            raise ValueError(f"{self.family} {name!r} is registered twice")
        self._entries[name] = Entry(name, target, params, meta)

    def entry(self, name: str) -> Entry[M]:
        """The entry called `name`; an unknown name is a user error listing the close ones."""
        if name not in self._entries:
            raise unknown_name(self.family, name, self._entries)
        return self._entries[name]

    def meta(self, name: str) -> M:
        """The metadata of `name` (every entry of a family with metadata has it)."""
        meta = self.entry(name).meta
        if meta is None:
            raise TypeError(f"{self.family} {name!r} has no metadata")
        return meta

    def builder(self, name: str) -> Callable[..., Any]:
        """The builder of `name` itself, imported now."""
        return _load(self.entry(name).target)

    def __getitem__(self, name: str) -> Callable[..., Any]:
        """The builder of `name`, its parameters defaulting to the entry's."""
        entry = self.entry(name)
        built = _load(entry.target)
        return functools.partial(_with_defaults, built, entry.defaults())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def _with_defaults(
    builder: Callable[..., Any], defaults: dict[str, Any], *args: Any, **params: Any
) -> Any:
    return builder(*args, **{**defaults, **params})


@functools.cache
def _load(target: str) -> Callable[..., Any]:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
