"""Claims: exclusive, taken over only when stale; debris removed only when provably dead."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from bench.core import claims
from bench.core.files import SESSION, UMASK, write_atomic
from bench.report.build import swap_in


def _age(path: Path, seconds: float) -> None:
    """Make `path` look untouched for `seconds`."""
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_a_claim_is_exclusive_until_released(tmp_path: Path) -> None:
    first = claims.try_claim(tmp_path / "k.claim")
    assert first is not None and claims.try_claim(tmp_path / "k.claim") is None
    held = json.loads((tmp_path / "k.claim").read_text())
    assert held["pid"] == os.getpid() and held["session"] == SESSION
    first.release()
    again = claims.try_claim(tmp_path / "k.claim")
    assert again is not None
    again.release()


def test_a_stale_claim_is_taken_over_a_live_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "k.claim"
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    _age(path, claims.STALE_AFTER / 2)
    assert claims.try_claim(path) is None and claims.owner(path) == "elsewhere, process 1"
    _age(path, claims.STALE_AFTER + 1)
    taken = claims.try_claim(path)
    assert taken is not None and json.loads(path.read_text())["pid"] == os.getpid()
    assert list(tmp_path.iterdir()) == [path]  # the stale claim's renamed copy is gone
    taken.release()


def test_a_holder_back_from_a_stall_leaves_its_successors_claim(tmp_path: Path) -> None:
    path = tmp_path / "k.claim"
    stalled = claims.try_claim(path)
    assert stalled is not None
    path.unlink()  # it stalled past STALE_AFTER, and another process took the claim over
    successor = {"host": "elsewhere", "pid": 1, "session": "other", "since": "now"}
    path.write_text(json.dumps(successor))
    stalled.release()
    assert json.loads(path.read_text()) == successor


def test_waiting_returns_the_result_once_the_holder_has_done_the_work(tmp_path: Path) -> None:
    path = tmp_path / "k.claim"
    holder = claims.try_claim(path)
    assert holder is not None
    told: list[str] = []
    polls = iter([None, None, "done"])
    claim, result = claims.wait_for_claim(path, lambda: next(polls), told.append, poll=0.01)
    assert claim is None and result == "done" and len(told) == 1
    holder.release()
    claim, result = claims.wait_for_claim(path, lambda: None, poll=0.01)
    assert claim is not None and result is None
    claim.release()


def test_only_the_debris_of_dead_sessions_is_removed(tmp_path: Path) -> None:
    sessions = tmp_path / claims.SESSIONS
    sessions.mkdir()
    live, dead, gone = "h-1-aaaaaa", "h-2-bbbbbb", "h-3-cccccc"
    (sessions / f"{live}.claim").write_text("{}")
    (sessions / f"{dead}.claim").write_text("{}")
    _age(sessions / f"{dead}.claim", claims.STALE_AFTER + 1)
    runs = tmp_path / "runs" / "r1"
    runs.mkdir(parents=True)
    kept = runs / f".run.json@{live}@x1.tmp"
    removed = runs / f".run.json@{dead}@x2.tmp"
    fresh_orphan = runs / f".metrics.json@{gone}@x3.tmp"  # no claim, but just written
    old_orphan = runs / f".metrics.json@{gone}@x4.tmp"
    scratch = tmp_path / f".report@{dead}@x5.partial"
    for path in (kept, removed, fresh_orphan, old_orphan):
        path.write_text("partial")
    scratch.mkdir()
    _age(old_orphan, claims.STALE_AFTER + 1)
    (runs / "notes.tmp").write_text("not ours: no session in the name")
    gone_now = claims.remove_debris(tmp_path)
    assert set(gone_now) == {removed, old_orphan, scratch}
    assert kept.exists() and fresh_orphan.exists() and (runs / "notes.tmp").exists()
    assert not (sessions / f"{dead}.claim").exists() and (sessions / f"{live}.claim").exists()


def test_written_files_follow_the_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for umask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        monkeypatch.setattr("bench.core.files.UMASK", umask)
        write_atomic(tmp_path / "f.json", b"{}")
        assert (tmp_path / "f.json").stat().st_mode & 0o777 == mode
    assert os.umask(UMASK) == UMASK  # the module read the process's real umask


def test_a_report_swap_killed_halfway_loses_no_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = tmp_path / "report"
    final.mkdir()
    (final / "index.html").write_text("old")
    new = tmp_path / "new"
    new.mkdir()
    (new / "index.html").write_text("new")
    real = os.replace

    def killed_at_the_second_rename(src, dst):
        if Path(dst) == final:
            raise KeyboardInterrupt  # stands for SIGKILL: nothing after it runs
        return real(src, dst)

    monkeypatch.setattr(os, "replace", killed_at_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        swap_in(new, final)
    monkeypatch.setattr(os, "replace", real)
    assert not final.exists() and (tmp_path / ".report.previous" / "index.html").exists()
    newer = tmp_path / "newer"
    shutil.copytree(new, newer)
    (newer / "index.html").write_text("newer")
    swap_in(newer, final)
    assert (final / "index.html").read_text() == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "report"]


def test_a_taker_that_saw_a_stale_claim_never_removes_a_fresh_one(tmp_path: Path) -> None:
    path = tmp_path / "k.claim"
    path.write_text(json.dumps({"host": "dead", "pid": 1}))
    _age(path, claims.STALE_AFTER + 1)
    # A and B both judged it stale; A took it over first and holds a fresh claim now.
    first = claims.try_claim(path)
    assert first is not None
    claims._remove_stale(path)  # B, late, acting on its old judgement
    assert path.exists() and json.loads(path.read_text())["pid"] == os.getpid()
    assert claims.try_claim(path) is None  # still A's alone
    first.release()


def test_a_reader_without_the_claim_never_discards_an_entry_being_saved(tmp_path: Path) -> None:
    from bench.stage1.artefacts import ArtefactCache

    cache = ArtefactCache(tmp_path)
    cache.folder.mkdir(parents=True)
    (cache.folder / "k.pt").write_bytes(b"written, its description not yet")
    assert cache.load("k", repair=False) is None
    assert (cache.folder / "k.pt").exists()  # the saver's data is left alone
    assert cache.load("k") is None and not (cache.folder / "k.pt").exists()  # the holder repairs
