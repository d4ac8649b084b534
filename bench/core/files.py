"""Crash-safe file writing, content hashing, and TOML writing (reading: `bench.core.validation`)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once, at import: setting it is the only portable way to read it
# This process, as named in its temporary files (`<name>@<session>@<random>`) and claims: the
# next process to join a folder removes the temporaries of sessions that died (`bench.core.claims`).
SESSION = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def write_atomic(path: Path, data: bytes, durable: bool = False) -> None:
    """Write `data` to `path` through a temporary file and a rename: never a half file. The
    file gets the permissions the umask allows (a temporary file alone would be 0600). With
    `durable`, the data and the rename are flushed to disk before returning (for a file whose
    presence marks something done)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}@{SESSION}@", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable and hasattr(os, "O_DIRECTORY"):  # the rename itself (POSIX only)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def ensure_writable(folder: Path, what: str, remedy: str) -> None:
    """Create `folder` if needed and check that files can be written in it, before any long
    work: an error names the folder, the cause and `remedy`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise BenchError(
            f"{what} {folder} is not a writable folder ({error.strerror or error}); {remedy}."
        ) from error


def write_text_atomic(path: Path, text: str, durable: bool = False) -> None:
    """Atomically write UTF-8 text (see `write_atomic`)."""
    write_atomic(path, text.encode("utf-8"), durable)


def write_json_atomic(path: Path, obj: Any, durable: bool = False) -> None:
    """Atomically write `obj` as indented JSON (see `write_atomic`)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    write_text_atomic(path, text, durable)


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
