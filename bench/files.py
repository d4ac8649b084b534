"""Crash-safe file writing, content hashing and TOML reading with errors that name the file."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.errors import BenchError


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename: never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Atomically write UTF-8 text."""
    write_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> None:
    """Atomically write `obj` as indented JSON."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def stable_hash(obj: Any, length: int = 12) -> str:
    """A short hex digest of a JSON-serialisable object, independent of key order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def hash_files(paths: Iterable[Path]) -> str:
    """A digest of the names and contents of `paths` (in the given order)."""
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        digest.update(path.name.encode("utf-8"))
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning syntax errors into a message naming the file and line."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as error:
        raise BenchError(f"{path}: file not found.") from error
    except tomllib.TOMLDecodeError as error:
        raise BenchError(f"{path}: invalid TOML ({error}). Fix the syntax and rerun.") from error


def _toml_key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "-_" for c in key) else _toml_value(key)


def _toml_value(value: Any) -> str:
    if hasattr(value, "item") and not isinstance(value, list | tuple):  # numpy scalars
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def toml_text(document: dict[str, Any], prefix: str = "") -> str:
    """`document` as TOML: scalars and arrays first, then each table (nested by dotted
    names); the inverse of `read_toml` for the values recipes hold."""
    lines = [
        f"{_toml_key(key)} = {_toml_value(v)}"
        for key, v in document.items()
        if not isinstance(v, dict)
    ]
    for key, table in document.items():
        if isinstance(table, dict):
            name = f"{prefix}{_toml_key(key)}"
            lines += ["", f"[{name}]", toml_text(table, f"{name}.").strip("\n")]
    return "\n".join(lines).strip("\n") + "\n"
