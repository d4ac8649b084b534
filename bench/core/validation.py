"""One validation layer for everything a user writes: files, tables, names and flags.

Files are looked at before they are opened (a FIFO, device or socket is refused, never read;
so is a file over its size limit) and every way of being unreadable becomes one line naming
the file and what to do. Tables (dataset specs, recipes, tuned recipes, executor configs, the
command line's settings) are checked against declared `Field`s: type, range, allowed names
with close-match suggestions. Names that become paths are confined to their folder. Every
failure is a `BenchError`, which the CLI prints on one line with exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError, closest
from bench.core.ranges import Range

TOML_LIMIT = 1 << 20  # bytes: a recipe, spec or executor config is a few hundred
WEIGHTS_LIMIT = 4 << 30  # bytes: a ResNet-152 state dict is 240 MB, a ViT-H 2.5 GB
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def _size(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISSOCK: "a socket",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def regular_file(path: Path, what: str, limit: int) -> os.stat_result:
    """Check, without opening it, that `path` is a regular file of at most `limit` bytes;
    returns its `stat`. `what` names the file in errors (`--weights`, `executor config`)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise BenchError(f"{what} {path}: no such file.") from None
    except OSError as error:
        raise BenchError(f"{what} {path}: cannot be read ({error.strerror or error}).") from None
    if not stat.S_ISREG(info.st_mode):
        raise BenchError(f"{what} {path}: is {_kind(info.st_mode)}, not a file; give a file.")
    if info.st_size > limit:
        raise BenchError(
            f"{what} {path}: {_size(info.st_size)}, over the {_size(limit)} a {what} may be; "
            "is it the right file?"
        )
    return info


def read_bytes(path: Path, what: str, limit: int) -> bytes:
    """The content of a regular file of at most `limit` bytes (see `regular_file`)."""
    regular_file(path, what, limit)
    try:
        return path.read_bytes()
    except OSError as error:
        raise BenchError(f"{what} {path}: cannot be read ({error.strerror or error}).") from None


def read_toml(path: Path, what: str = "TOML file") -> dict[str, Any]:
    """A TOML file (at most `TOML_LIMIT` bytes, UTF-8) parsed; errors name the file, and
    for syntax the line."""
    data = read_bytes(path, what, TOML_LIMIT)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BenchError(
            f"{what} {path}: not UTF-8 text (byte {error.start}); save it as UTF-8."
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise BenchError(f"{path}: invalid TOML ({error}). Fix the syntax and rerun.") from None


def first_line(error: BaseException, width: int = 160) -> str:
    """A library's error message cut to its first line (torch's run to paragraphs)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= width else text[: width - 1] + "…"


def reject_unknown(table: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """A misspelt key is an error, never silently ignored: name it, its closest allowed key
    and the allowed ones."""
    allowed = list(allowed)
    unknown = sorted(set(table) - set(allowed))
    if not unknown:
        return
    close = {k: closest(k, allowed, n=1) for k in unknown}
    hints = "".join(f" ({k!r}: did you mean {c[0]!r}?)" for k, c in close.items() if c)
    raise BenchError(
        f"{where}: unknown key(s) {', '.join(unknown)}{hints}; allowed: "
        f"{', '.join(allowed) or 'none'}."
    )


def table_at(document: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    """`document[key]` when it is a table (an absent key is an empty one)."""
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise BenchError(f"{where}: [{key}] must be a table, got {value!r}.")
    return value


@dataclass(frozen=True)
class Field:
    """What one key of a user's table may hold: a type (`int`, `float`, `bool`, `str` or
    `list`, whose items are `items`), bounds for numbers (inclusive unless marked open; a float
    must also be finite), allowed `choices` for text, and `advice` for the message. The one
    check of every value a user writes: settings, specs, executor configs and, through
    `bench.core.registry.Param`, the parameters of registered components."""

    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    items: type | None = None
    advice: str = ""
    low_open: bool = False
    high_open: bool = False

    @property
    def range(self) -> Range:
        """The valid numbers."""
        return Range(self.low, self.high, self.low_open, self.high_open)

    def check(self, value: Any, where: str) -> Any:
        """`value` checked (an int given for a float becomes a float); errors name `where`."""
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not _is(value, self.kind):
            raise BenchError(f"{where} must be {_article(self.kind)}, got {value!r}.")
        if self.kind is list and self.items is not None:
            for item in value:
                if not _is(item, self.items):
                    raise BenchError(
                        f"{where} must list {self.items.__name__} values, got {item!r}."
                    )
        self._check_range(value, where)
        if self.choices and value not in self.choices:
            raise unknown_value(where, value, self.choices)
        return value

    def _check_range(self, value: Any, where: str) -> None:
        numbers = value if isinstance(value, list) else [value]
        for number in numbers:
            if not isinstance(number, int | float) or isinstance(number, bool):
                continue
            if number not in self.range:
                advice = self.advice or _bounds(self.range)
                raise BenchError(f"{where} = {number!r} is out of range; {advice}.")


def _is(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _article(kind: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        kind, f"a {kind.__name__}"
    )


def _bounds(valid: Range) -> str:
    if valid.low_open or valid.high_open:
        return f"use a finite value {valid}"
    low, high = valid.low, valid.high
    if low is not None and high is not None:
        return f"use a finite value from {low:g} to {high:g}"
    if low is not None:
        return f"use a finite value of {low:g} or more"
    if high is not None:
        return f"use a finite value of {high:g} or less"
    return "use a finite value"


def unknown_value(where: str, value: Any, choices: Iterable[str]) -> BenchError:
    """An error for a value outside its allowed names, with the closest ones."""
    choices = list(choices)
    close = closest(str(value), choices, n=2)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return BenchError(f"{where} = {value!r} is not one of {', '.join(choices)}.{hint}")


def check_fields(table: Any, fields: Mapping[str, Field], where: str) -> dict[str, Any]:
    """A user's table checked key by key against `fields` (unknown keys refused with
    suggestions); returns the checked values."""
    if not isinstance(table, dict):
        raise BenchError(f"{where} must be a table, got {table!r}.")
    reject_unknown(table, fields, where)
    return {key: fields[key].check(value, f"{where}: {key!r}") for key, value in table.items()}


def confined_name(name: str, what: str) -> str:
    """A name that becomes a file name (a tuned method, a dataset): letters, digits and
    `_ . + -`, never a path: `tuned/../x` cannot reach a file outside its folder."""
    if not NAME.fullmatch(name) or ".." in name:
        raise BenchError(
            f"{what} {name!r}: use letters, digits and _ . + - only (a name, not a path)."
        )
    return name


def _whole_number(text: str, low: int, high: int | None) -> int:
    bounds = f"from {low} to {high}" if high is not None else f"of {low} or more"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {text}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number of 1 or more (at most 10**6, which no flag needs)."""
    return _whole_number(text, 1, 10**6)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of 0 or more (the setting it feeds checks its range)."""
    return _whole_number(text, 0, None)


def finite_float(text: str) -> float:
    """An argparse type: a finite number (nan and inf are refused here, ranges by the setting)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | float, unit: str = "s") -> float:
    """Seconds in a duration a user wrote: a number (in `unit`), a number with s, m, h or d
    (`90s`, `30m`, `2h`, `1d`), or h:mm:ss; finite and not negative."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if not math.isfinite(text) or text < 0:
            raise BenchError(f"duration {text!r}: give a finite number, 0 or more.")
        return float(text) * SECONDS[unit]
    written = str(text).strip()
    if match := re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", written):
        return float(match.group(1)) * SECONDS[match.group(2) or unit]
    if match := re.fullmatch(r"(\d+):(\d\d):(\d\d)", written):
        hours, minutes, seconds = (int(g) for g in match.groups())
        return 3600 * hours + 60 * minutes + seconds
    raise BenchError(
        f"duration {written!r}: use a number ({unit}), or one with s, m, h or d (30m, 2h), "
        "or h:mm:ss."
    )
