"""Claims: a file created exclusively says who works on something; a heartbeat keeps it alive.

Processes that share a results folder or a cache — on one machine, or on a cluster's shared
file system, where a process id cannot be checked from another host and `flock` is unreliable —
meet through claim files. `NAME.claim` is created with `O_CREAT | O_EXCL` (atomic on local file
systems and on NFS v3 and later) and holds the host, the process id and the start time; its
modification time is its heartbeat, refreshed every `HEARTBEAT` seconds by one thread per
process. A claim whose heartbeat is older than `STALE_AFTER` belongs to a dead or hung worker
and may be taken over: under a second exclusive file, so only one taker removes it.

Every `bench` process that writes into a results folder or a cache also holds a *session*
claim there (`ROOT/.sessions/<session>.claim`) for as long as it runs. Its temporary files
carry the session's name, so debris left by a killed process is recognised as such — its
session claim has gone stale — and removed by the next process that joins that folder, while
the temporaries of a live process are never touched.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.core.files import SESSION, UMASK, write_atomic

# Seconds between refreshes of every claim a process holds (`$BENCH_HEARTBEAT`, default 10); a
# claim not refreshed for six of them is a dead worker's.
HEARTBEAT = float(os.environ.get("BENCH_HEARTBEAT", "10"))
STALE_AFTER = 6 * HEARTBEAT
SESSIONS = ".sessions"
SCRATCH = (".report@", ".compare@")  # prefixes of the report builders' scratch folders

_held: set[Path] = set()
_lock = threading.Lock()
_beating: threading.Thread | None = None


def _beat() -> None:
    """Refresh the heartbeat of every claim this process holds, forever (a daemon thread)."""
    while True:
        time.sleep(HEARTBEAT)
        with _lock:
            held = list(_held)
        for path in held:
            try:
                os.utime(path)
            except FileNotFoundError:  # taken over as stale after a long stall: let it go
                with _lock:
                    _held.discard(path)
            except OSError:  # a passing file-system error (NFS): the thread must live on
                continue


def _hold(path: Path) -> None:
    global _beating
    with _lock:
        _held.add(path)
        if _beating is None:
            _beating = threading.Thread(target=_beat, name="claim-heartbeat", daemon=True)
            _beating.start()


class Claim:
    """A held claim; release it (or leave the `with` block) when the work is done."""

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self.path = path
        self.record = record

    def release(self) -> None:
        """Give the claim up, unless it is no longer this one: after a stall longer than
        `STALE_AFTER` another process may have taken it over, and its claim stays. Looked at
        and removed under the takeover file (see `_remove_stale`), so that no taker replaces
        it in between."""
        with _lock:
            _held.discard(self.path)
        lock = _takeover_file(self.path)
        for _ in range(20):
            if _create_exclusive(lock):
                break
            time.sleep(0.05)  # a taker is looking at it: the verdict comes soon
        else:
            return  # a taker holds on: this claim is stale, and the taker removes it
        try:
            if json.loads(self.path.read_text()) == self.record:
                self.path.unlink()
        except (OSError, ValueError):  # gone, or a new holder's still being written
            pass
        finally:
            lock.unlink(missing_ok=True)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_stale(path: Path, now: float | None = None) -> bool:
    """Whether the claim at `path` has not been refreshed for `STALE_AFTER` seconds (a claim
    that is gone counts as stale)."""
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        return True
    return age > STALE_AFTER


def owner(path: Path) -> str:
    """Who holds the claim at `path`, for messages (`host, process id`)."""
    try:
        held = json.loads(path.read_text())
        return f"{held['host']}, process {held['pid']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _takeover_file(path: Path) -> Path:
    """The exclusive file under which the claim at `path` is judged and removed."""
    return path.with_name(f"{path.name}.takeover")


def _create_exclusive(path: Path) -> bool:
    """Create the empty file `path` if it does not exist; whether this call created it."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~UMASK))
    except FileExistsError:
        return False
    return True


def _remove_stale(path: Path) -> None:
    """Remove the stale claim at `path`, under a second exclusive file so that two takers can
    never both remove it (the second would remove the first one's fresh claim). While the
    second file exists no claim can be created at `path`, since `path` still exists."""
    lock = _takeover_file(path)
    if not _create_exclusive(lock):
        if is_stale(lock):  # a taker died within these few lines: clear the way for the next
            lock.unlink(missing_ok=True)
        return
    try:
        if is_stale(path):  # still the dead worker's: nobody can have replaced it meanwhile
            path.unlink(missing_ok=True)
    finally:
        lock.unlink(missing_ok=True)


def try_claim(path: Path) -> Claim | None:
    """Claim `path` if nobody holds it or its holder is stale; None when another holds it."""
    for _ in range(2):  # once as it is, once more after removing a stale claim
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~UMASK)
        except FileExistsError:
            if not is_stale(path):
                return None
            _remove_stale(path)
            continue
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "session": SESSION,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
        _hold(path)
        return Claim(path, record)
    return None


def wait_for_claim(
    path: Path,
    ready: Callable[[], Any],
    on_wait: Callable[[str], None] | None = None,
    poll: float = 2.0,
) -> tuple[Claim | None, Any]:
    """Claim `path`, unless `ready()` returns a result first (the work was done by whoever
    held the claim): returns (the claim, None) or (None, the result). Waits while a live
    process holds the claim; `on_wait` is told who, once."""
    told = False
    while True:
        result = ready()
        if result is not None:
            return None, result
        claim = try_claim(path)
        if claim is not None:
            result = ready()  # done between the look and the claim
            if result is not None:
                claim.release()
                return None, result
            return claim, None
        if on_wait is not None and not told:
            on_wait(owner(path))
            told = True
        time.sleep(poll)


_joined: dict[Path, Claim] = {}


def join(root: Path) -> None:
    """Remove the debris that sessions which died in `root` left behind, and hold this
    process's session claim there (taken once per process and root)."""
    root = root.resolve()
    (root / SESSIONS).mkdir(parents=True, exist_ok=True)
    remove_debris(root)
    if root not in _joined and (claim := try_claim(root / SESSIONS / f"{SESSION}.claim")):
        _joined[root] = claim


def _debris(root: Path) -> list[Path]:
    """Temporary files and report scratch folders anywhere under `root`. Walked with
    `os.walk`, which passes over a folder that another process removes meanwhile (a report
    swap), where `Path.rglob` raised."""
    found = []
    for folder, dirs, files in os.walk(root):
        found += [Path(folder, name) for name in files if name.endswith(".tmp")]
        found += [Path(folder, name) for name in dirs if name.startswith(SCRATCH)]
    return found


def _session_of(path: Path) -> str | None:
    """The session named in a temporary's name (`<stem>@<session>@<random>`), or None."""
    parts = path.name.rsplit("@", 2)
    return parts[1] if len(parts) == 3 and parts[1] else None


def remove_debris(root: Path) -> list[Path]:
    """Delete the temporaries under `root` whose session is provably gone: its claim in
    `root/.sessions` is stale, or missing while the temporary has not been written to for
    `STALE_AFTER` seconds. Returns what was removed."""
    sessions, now, removed = root / SESSIONS, time.time(), []
    for path in _debris(root):
        session = _session_of(path)
        if session is None:
            continue
        claim = sessions / f"{session}.claim"
        if claim.exists():
            dead = is_stale(claim, now)
        else:
            try:
                dead = now - path.stat().st_mtime > STALE_AFTER
            except FileNotFoundError:
                continue
        if not dead:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    for claim in sessions.glob("*.claim") if sessions.is_dir() else []:
        if is_stale(claim, now):
            claim.unlink(missing_ok=True)
    return removed


def session_claim(path: Path) -> Path | None:
    """This process's session claim in the nearest folder at or above `path` it has joined."""
    path = path.resolve()
    for root in sorted(_joined, key=lambda r: len(r.parts), reverse=True):
        if path == root or root in path.parents:
            return _joined[root].path
    return None


def is_live(path: Path) -> bool:
    """Whether the claim at `path` belongs to a live process: refreshed within `STALE_AFTER`
    and, when held on this host, by a process that still exists (known at once, not after a
    minute's silence)."""
    if is_stale(path):
        return False
    try:
        held = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if held.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(held["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, TypeError, ValueError):
        pass
    return True


def note_use(root: Path, entry: str) -> None:
    """Record in this process's session claim at `root` (joined if need be) that it uses
    `entry` (a name relative to `root`): `in_use` then knows the entry is being read."""
    root = root.resolve()
    if root not in _joined:  # joining walks the folder for debris: once per process and root
        join(root)
    claim = _joined.get(root)
    if claim is None:
        return
    with _lock:
        using = set(claim.record.get("using", []))
        if entry in using:
            return
        record = {**claim.record, "using": sorted(using | {entry})}
        write_atomic(claim.path, json.dumps(record).encode("utf-8"))
        claim.record = record


def in_use(root: Path) -> dict[str, str]:
    """The entries under `root` that other live processes have recorded using, with who uses
    them (this process asks because it is done with its own)."""
    sessions, used = root / SESSIONS, {}
    for path in sessions.glob("*.claim") if sessions.is_dir() else []:
        if not is_live(path):
            continue
        try:
            held = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if held.get("session") == SESSION:
            continue
        for entry in held.get("using", []):
            used[entry] = f"{held.get('host')}, process {held.get('pid')}"
    return used


def busy(folder: Path) -> dict[str, str]:
    """The keys of the cache entries in `folder` (`<cache>/<kind>`) that a live process
    uses (see `note_use`) or holds the claim of, with who."""
    held = {
        Path(entry).name: who
        for entry, who in in_use(folder.parent).items()
        if Path(entry).parent.name == folder.name
    }
    for claim in folder.glob("*.claim") if folder.is_dir() else []:
        if is_live(claim):
            held[claim.stem] = owner(claim)
    return held


@atexit.register
def _leave() -> None:
    for claim in list(_joined.values()):
        claim.release()
    _joined.clear()
