"""Where a sweep's Optuna studies are kept: SQLite, a journal file, or a database server."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend

from bench.core.errors import BenchError


def masked(text: str, url: str | None = None) -> str:
    """`text` with the password of a database URL (`url`, else one in `text`) replaced by
    `***` — in `user:password@host`, up to the host's `@`, and in a `password=` parameter — so
    that no error message or log line shows it."""
    secrets = []
    for source in (url or "", text):
        if found := re.search(r"://[^:/@\s]*:(\S*)@[^@/?\s]*", source):
            secrets.append(found.group(1))
        secrets += re.findall(r"[?&]password=([^&\s]+)", source)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def open_storage(
    storage: str | None, folder: Path, stem: str, heartbeat: int
) -> optuna.storages.BaseStorage:
    """The study storage: SQLite under `folder` (default), a journal file (`journal`), or any
    database URL Optuna accepts. Database storages send heartbeats, so the trial of a killed
    worker is marked failed after twice `heartbeat` seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    if storage == "journal":
        backend = JournalFileBackend(str(folder / f"{stem}.journal"))
        return optuna.storages.JournalStorage(backend)
    url = f"sqlite:///{folder / stem}.db" if storage in (None, "sqlite") else storage
    if url.startswith("postgresql://"):  # the psycopg 3 driver, whatever SQLAlchemy's default
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        with warnings.catch_warnings():  # heartbeats are marked experimental by Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat
            )
    except (ImportError, ModuleNotFoundError) as error:
        hint = ' For PostgreSQL: pip install -e ".[postgres]".' if "postgresql" in url else ""
        raise BenchError(
            f"storage {masked(url)!r} needs a database driver that is not installed "
            f"({masked(str(error), url)}).{hint}"
        ) from error
    except Exception as error:  # SQLAlchemy raises many kinds for a bad URL or server
        raise BenchError(
            f"cannot open storage {masked(url)!r}: {type(error).__name__}: "
            f"{masked(str(error).strip().splitlines()[0], url)}"
        ) from error
