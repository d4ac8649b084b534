"""Nothing a command starts outlives it, `bench status` asks the submitter's claim before
calling a queued job failed, and `bench cache clear` leaves what a live process uses (issue
20). The real-process tests kill a real submitter."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import age_dead_claims

from bench.cli.main import main
from bench.core import claims
from bench.execution.executors.processes import _exit
from bench.execution.jobs import FAILED, PENDING, Batch, Job
from bench.run.status import batch_states
from bench.stage1.artefacts import ArtefactCache


def _dead_pid() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _session_claim(root: Path, pid: int, using: list[str]) -> Path:
    """A session claim in `root` as a process `pid` of this host writes it."""
    path = root / claims.SESSIONS / f"other-{pid}.claim"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "using": using}))
    return path


def test_a_queued_job_is_pending_while_its_submitter_lives_and_failed_once_it_died(
    tmp_path: Path,
) -> None:
    results = tmp_path / "tiny"
    batch = Batch.create(results / "jobs", "local")
    batch.jobs = [Job(0, "ce", "queued", batch.folder / "log", batch.result_file(0))]
    batch.submitter = str(_session_claim(results, os.getpid(), []))  # live: this process
    assert batch_states(batch)[batch.jobs[0].uid].state == PENDING
    batch.submitter = str(_session_claim(results, _dead_pid(), []))  # fresh file, dead process
    state = batch_states(batch)[batch.jobs[0].uid]
    assert state.state == FAILED and "never started" in state.detail


def test_a_batch_names_its_submitters_session_claim(tmp_path: Path) -> None:
    claims.join(tmp_path / "tiny")
    batch = Batch.create(tmp_path / "tiny" / "jobs", "local")
    batch.save()
    loaded = Batch.load(batch.folder)
    assert loaded.submitter == str(claims.session_claim(tmp_path / "tiny" / "jobs"))
    assert Path(loaded.submitter).is_file() and claims.is_live(Path(loaded.submitter))


def test_cache_clear_keeps_the_entries_a_live_process_uses_and_names_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = ArtefactCache(tmp_path)
    for key in ("aaa", "bbb", "ccc"):
        (cache.folder).mkdir(parents=True, exist_ok=True)
        torch.save({}, cache.folder / f"{key}.pt")
        (cache.folder / f"{key}.json").write_text("{}")
    reader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _session_claim(tmp_path, reader.pid, ["stage1/aaa"])  # a live process reads this one
        _session_claim(tmp_path, _dead_pid(), ["stage1/bbb"])  # a dead process read this one
        claims.note_use(tmp_path, "stage1/ccc")  # this process, which clears: done with it
        assert main(["cache", "clear", "--stage1", "--cache-dir", str(tmp_path)]) == 0
    finally:
        reader.kill()
    out = capsys.readouterr().out
    assert sorted(p.name for p in cache.folder.iterdir()) == ["aaa.json", "aaa.pt"]
    assert "removed 2 stage-1 artefact(s)" in out
    assert f"kept aaa: in use by {socket.gethostname()}, process {reader.pid}" in out


def test_a_killed_worker_is_not_blamed_on_memory_alone() -> None:
    assert _exit(-signal.SIGKILL) == (
        "the worker process was killed by SIGKILL (by the user, or the kernel when memory ran out)"
    )


def _argv(results: Path, *extra: str) -> list[str]:
    return [
        "run", "--dataset", "tiny", "--methods", "ce", "--seeds", "0",
        "--results-dir", str(results), "--cache-dir", f"{results}-cache", "--device", "cpu",
        "--threads", "1", "--no-progress", "--no-report", *extra,
    ]  # fmt: skip


def _worker_of(cache: Path, submitter: subprocess.Popen[str]) -> int:
    """The pid of the worker training a stage 1 for `submitter` (from its claim)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and submitter.poll() is None:
        for claim in (cache / "stage1").glob("*.claim") if (cache / "stage1").is_dir() else []:
            try:
                return int(json.loads(claim.read_text())["pid"])
            except (OSError, ValueError, KeyError):
                continue
        time.sleep(0.1)
    raise AssertionError("no worker started")


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _metrics(results: Path) -> dict[str, dict]:
    return {
        p.parent.name: json.loads(p.read_text())
        for p in (results / "tiny" / "runs").glob("*/metrics.json")
    }


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_a_submitter_ended_by_any_signal_takes_its_workers_with_it(
    tiny_project: Path, tmp_path: Path, one_thread: None, signum: int
) -> None:
    results = tmp_path / "results"
    slow = ("--epochs", "200", "--jobs", "2")
    command = [sys.executable, "-m", "bench.cli.main", *_argv(results, *slow)]
    submitter = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker = _worker_of(Path(f"{results}-cache"), submitter)
    assert worker != submitter.pid
    submitter.send_signal(signum)
    _, err = submitter.communicate(timeout=60)
    assert _gone(worker, within=5.0), "the worker outlived its submitter"
    if signum == signal.SIGKILL:
        assert submitter.returncode == -signal.SIGKILL
        # The dead processes' claims, stale as after STALE_AFTER.
        assert age_dead_claims(results, Path(f"{results}-cache"))
        reference = tmp_path / "reference"
        assert main(_argv(reference, "--epochs", "200")) == 0
        assert main(_argv(results, *slow)) == 0  # the rerun completes what was lost
        assert _metrics(results) == _metrics(reference) and len(_metrics(results)) == 1
    else:
        assert submitter.returncode == 128 + signum, err
        name = signal.Signals(signum).name
        assert f"bench: stopped by {name}; the worker processes were stopped" in err


def test_a_process_records_the_cache_entries_it_opens_in_its_session_claim(
    tmp_path: Path,
) -> None:
    assert ArtefactCache(tmp_path).load("k1") is None  # looked for: may be about to read it
    session = claims.session_claim(tmp_path)
    assert session is not None
    assert json.loads(session.read_text())["using"] == ["stage1/k1"]
