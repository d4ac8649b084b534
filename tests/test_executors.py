"""Executors: units of work, `--jobs N` worker processes and SLURM jobs (a real cluster, which
`.ci/run` starts) give the metrics of a local run, each run once; killed, timed-out and
interrupted jobs are reported and resumed."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from conftest import age_dead_claims, tiny_environment
from optuna.trial import TrialState

from bench.cli.main import main
from bench.core.errors import BenchError
from bench.data.specs import get_spec
from bench.execution.executors import options as executor_options
from bench.execution.executors import processes, slurm
from bench.execution.executors.options import (
    ExecutorOptions,
    parse_minutes,
    resolve_options,
    usable_cpus,
)
from bench.execution.executors.processes import ProcessExecutor
from bench.execution.executors.slurm import SlurmWatcher, probe_visibility
from bench.execution.jobs import Job
from bench.recipes.methods import MethodRegistry
from bench.run import runner
from bench.run.plan import RunOptions, group_units, plan
from bench.run.work import rebuild_runs
from bench.sweep import workers as sweep_workers


def _cluster_reason() -> str | None:
    if shutil.which("sinfo") is None:
        return "needs a SLURM cluster (no sinfo here): .ci/run starts a single-node one"
    listed = subprocess.run(["sinfo", "-h"], capture_output=True, text=True)
    if listed.returncode != 0:
        return f"sinfo fails here ({listed.stderr.strip()[:120]})"
    return None


needs_cluster = pytest.mark.skipif(_cluster_reason() is not None, reason=str(_cluster_reason()))


def _argv(results: Path, methods: str, *extra: str) -> list[str]:
    """`bench run` on the tiny set with a cache of its own beside `results` (so that each
    command trains its own stage 1s), one thread."""
    return [
        "run", "--dataset", "tiny", "--methods", methods, "--seeds", "0,1",
        "--results-dir", str(results), "--cache-dir", f"{results}-cache", "--device", "cpu",
        "--threads", "1", "--no-progress", "--no-report", *extra,
    ]  # fmt: skip


def _runs(results: Path) -> dict[str, dict]:
    """Metrics of every recorded run, by run id (one folder per run: never two)."""
    found = {}
    for record in (results / "tiny" / "runs").glob("*/run.json"):
        run = json.loads(record.read_text())
        assert run["status"] == "done", run.get("error")
        found[run["run_id"]] = json.loads((record.parent / "metrics.json").read_text())
    return found


def test_units_group_the_runs_of_a_stage1_and_put_the_costliest_first(
    tiny_project: Path, tmp_path: Path
) -> None:
    spec = get_spec("tiny")
    methods = MethodRegistry().expand("ce,ce+crt,ce+lws,rs-cb")
    options = RunOptions("tiny", seeds=(0, 1), results_dir=tmp_path, progress=False)
    runs = plan(options, spec, methods, torch.device("cpu"))
    units = group_units(runs, options, tmp_path)
    assert len(units) == 4  # (ce, rs-cb) × 2 seeds
    by_name = {unit.name: unit for unit in units}
    ce0 = by_name["ce-d0-s0"]
    assert [m.name for m in ce0.methods] == ["ce", "ce+crt", "ce+lws"]
    assert set(ce0.run_ids) == {r.run_id for r in runs if r.stage1_key == ce0.stage1_key}
    assert sorted(r for u in units for r in u.run_ids) == sorted(r.run_id for r in runs)
    assert [u.cost for u in units] == sorted((u.cost for u in units), reverse=True)
    # A stage 1 already in the cache costs only its stage 2s: it goes last.
    cache = runs[0].experiment.cache
    cache.folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".pt", ".json"):
        (cache.folder / f"{ce0.stage1_key}{suffix}").write_text("x")
    regrouped = group_units(runs, options, tmp_path)
    assert regrouped[-1].name == "ce-d0-s0" and regrouped[-1].cached
    assert regrouped[-1].cost < 0.1 * regrouped[0].cost


def test_executor_options_come_from_defaults_config_and_command_line(tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(
        '[executor]\nname = "slurm"\npartition = "gpu"\ngpus = 1\ntime = "2h"\n'
        'setup = ["module load cuda"]\njobs = 8\n'
    )
    options = resolve_options(config, {"slurm_partition": "a100", "jobs": None})
    assert options == ExecutorOptions(
        name="slurm",
        jobs=8,
        slurm_partition="a100",  # the command line wins
        slurm_gpus=1,
        slurm_time=120,
        slurm_setup=("module load cuda",),
    )
    assert resolve_options(None, {}).in_process
    assert parse_minutes("1:30:00") == 90 and parse_minutes("1d") == 1440
    config.write_text('[executor]\npartiton = "gpu"\n')
    with pytest.raises(BenchError, match=r"unknown key\(s\) partiton"):
        resolve_options(config, {})
    with pytest.raises(BenchError, match="--slurm-gpus only apply to --executor slurm"):
        resolve_options(None, {"slurm_gpus": 1})
    with pytest.raises(BenchError, match="smallest time limit"):
        parse_minutes("0.5m")


def test_slurm_without_its_commands_is_a_one_line_error_before_loading(
    tiny_project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(_argv(tmp_path / "results", "ce", "--executor", "slurm")) == 2
    error = capsys.readouterr().err.strip()
    assert "sbatch" in error and "--jobs N" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "results" / "tiny" / "runs").exists()


def test_the_probe_refuses_a_folder_that_is_not_the_submitters(tmp_path: Path) -> None:
    token = tmp_path / "probe-token"
    token.write_text("mine")
    assert probe_visibility((str(token), "mine", str(tmp_path / "cache")))
    with pytest.raises(BenchError, match="not the submitter's folder"):
        probe_visibility((str(token), "theirs", str(tmp_path / "cache")))


@pytest.fixture(scope="module")
def local_ce_crt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The metrics of ce,ce+crt at seeds 0 and 1 run in this process, by run id: the reference
    of the worker and SLURM runs, computed once, in the environment those tests run in
    (`tiny_project`, `one_thread`, an isolated cache)."""
    folder = tmp_path_factory.mktemp("local")
    with tiny_environment(folder):
        assert main(_argv(folder / "results", "ce,ce+crt")) == 0
    runs = _runs(folder / "results")
    assert len(runs) == 4
    return runs


@pytest.mark.slow
def test_jobs_2_gives_the_metrics_of_a_local_run_each_run_once(
    tiny_project: Path, tmp_path: Path, one_thread: None, local_ce_crt: dict[str, dict]
) -> None:
    assert main(_argv(tmp_path / "jobs", "ce,ce+crt", "--jobs", "2")) == 0
    jobs = _runs(tmp_path / "jobs")
    assert len(jobs) == 4 and jobs == local_ce_crt  # same ids, same metrics
    record = json.loads(next((tmp_path / "jobs" / "tiny" / "runs").glob("*/run.json")).read_text())
    assert record["executor"]["name"] == "local" and record["executor"]["workers"] == 2
    assert record["torch_threads"] == 1
    assert (tmp_path / "jobs" / "tiny" / "runs.csv").exists()  # written once, by the submitter
    assert main(_argv(tmp_path / "jobs", "ce,ce+crt", "--jobs", "2")) == 0  # all done:
    assert len(list((tmp_path / "jobs" / "tiny" / "jobs").glob("*/batch.json"))) == 1  # no job


@pytest.mark.slow
def test_a_killed_worker_fails_its_job_only_and_a_rerun_completes(
    tiny_project: Path, tmp_path: Path, one_thread: None
) -> None:
    methods, slow = "ce,ce+crt,rs-cb", ("--epochs", "120", "--seeds", "0")
    assert main(_argv(tmp_path / "local", methods, *slow)) == 0
    results = tmp_path / "results"
    cache = Path(f"{results}-cache")
    command = [
        sys.executable,
        "-m",
        "bench.cli.main",
        *_argv(results, methods, *slow, "--jobs", "2"),
    ]
    submitter = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:  # a worker training a stage 1
        for claim in (cache / "stage1").glob("*.claim") if (cache / "stage1").is_dir() else []:
            try:
                victim = json.loads(claim.read_text())["pid"]
            except (OSError, ValueError, KeyError):
                continue
        time.sleep(0.1)
    assert victim is not None and victim != submitter.pid
    os.kill(victim, signal.SIGKILL)
    out, err = submitter.communicate(timeout=600)
    assert submitter.returncode == 1, err
    assert "killed by SIGKILL" in err + out and "bench status" in err
    survivors = _runs(results)  # the other job went on
    assert 1 <= len(survivors) < 3
    # The dead worker's claims, stale as after STALE_AFTER (its submitter has ended too).
    assert age_dead_claims(results, cache, Path(os.environ["BENCH_CACHE_DIR"]))
    assert main(_argv(results, methods, *slow, "--jobs", "2")) == 0
    assert _runs(results) == _runs(tmp_path / "local")  # all 3, each once, same metrics


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_local_workers_end_with_their_command_whatever_ended_it(
    tiny_project: Path,
    tmp_path: Path,
    one_thread: None,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    # An error (or a test's timeout) while following the workers, not only Ctrl-C, must not
    # leave them training on: `live` promises that no earlier local worker lives on.
    started: list[subprocess.Popen[bytes]] = []

    def failing_wait(executor: processes.ProcessExecutor, jobs: list, *args: object, **kw: object):
        started.extend(r.process for r in executor.running.values())
        raise RuntimeError("lost while following the workers")

    monkeypatch.setattr(runner, "wait", failing_wait)
    monkeypatch.setattr(sweep_workers, "wait", failing_wait)
    argv = _argv(tmp_path / "results", "ce,rs-cb", "--epochs", "1000", "--seeds", "0")
    if command == "sweep":
        argv = ["sweep", "--method", "ce+crt", "--dataset", "tiny", "--storage", "journal"]
        argv += ["--results-dir", str(tmp_path / "results"), "--epochs", "1000", "--device", "cpu"]
    with pytest.raises(RuntimeError, match="lost while following"):
        main([*argv, "--jobs", "2"])
    assert len(started) == 2
    assert all(process.poll() is not None for process in started)  # stopped and reaped


@pytest.mark.slow
@needs_cluster
def test_slurm_run_gives_the_metrics_of_a_local_run(
    tiny_project: Path,
    tmp_path: Path,
    one_thread: None,
    local_ce_crt: dict[str, dict],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(_argv(tmp_path / "slurm", "ce,ce+crt", "--executor", "slurm")) == 0
    assert _runs(tmp_path / "slurm") == local_ce_crt
    jobs = tmp_path / "slurm" / "tiny" / "jobs"
    assert (jobs / ".probe-ok").exists() and len(list(jobs.glob("probes/*/batch.json"))) == 1
    capsys.readouterr()
    assert main(["status", "--dataset", "tiny", "--results-dir", str(tmp_path / "slurm")]) == 0
    text = capsys.readouterr().out
    assert "4 run(s) recorded" in text and "(runs, slurm, 2 job(s)): 2 done" in text


@pytest.mark.slow
@needs_cluster
def test_slurm_errors_name_the_cause_and_the_fix(
    tiny_project: Path, tmp_path: Path, one_thread: None, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    assert main(_argv(results, "ce", "--executor", "slurm", "--slurm-partition", "nope")) == 2
    assert "no partition 'nope'" in capsys.readouterr().err
    # A job past its time limit is killed by SLURM (after 1 to 1.5 minutes).
    argv = _argv(results, "ce", "--executor", "slurm", "--slurm-time", "1", "--epochs", "10000")
    assert main([*argv, "--seeds", "0"]) == 1
    err = capsys.readouterr().err
    assert "killed at its time limit (1 min); raise --slurm-time" in err and "log: " in err
    assert main(["status", "--dataset", "tiny", "--results-dir", str(results)]) == 0
    status = capsys.readouterr().out
    assert "failed job" in status and "time limit" in status and "no job is queued" in status


def _job_ids(jobs_dir: Path) -> list[str]:
    """The SLURM job ids in the batch ledgers under `jobs_dir`: none until sbatch has answered
    (the ledger is first written without them) and the ledger is saved again."""
    ids = []
    for ledger in jobs_dir.glob("*/batch.json"):
        with contextlib.suppress(ValueError, OSError):  # being replaced
            ids += [job["job_id"] for job in json.loads(ledger.read_text())["jobs"]]
    return [i for i in ids if i]


@pytest.mark.slow
@needs_cluster
def test_ctrl_c_leaves_slurm_jobs_running_and_a_rerun_follows_them(
    tiny_project: Path, tmp_path: Path, one_thread: None, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    argv = _argv(results, "ce,ce+crt", "--executor", "slurm", "--epochs", "150")
    submitter = subprocess.Popen(
        [sys.executable, "-m", "bench.cli.main", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test runner started in the background (`cmd &` in a script) passes SIGINT on as
        # ignored, and Python then installs no Ctrl-C handler: give the submitter the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    jobs_dir = results / "tiny" / "jobs"
    deadline = time.monotonic() + 120
    while not _job_ids(jobs_dir) and time.monotonic() < deadline:
        time.sleep(0.2)  # submitted (after the probe, whose ledger is in jobs/probes)
    assert len(_job_ids(jobs_dir)) == 2, "the jobs were not submitted within 2 minutes"
    submitter.send_signal(signal.SIGINT)
    _, err = submitter.communicate(timeout=60)
    assert submitter.returncode == 130, err
    assert "keep running on the cluster" in err and "bench status --dataset tiny" in err
    assert main(argv) == 0  # follows the running jobs rather than submitting new ones
    out = capsys.readouterr().out
    assert "following 2 job(s)" in out and "submitted" not in out
    assert len(_runs(results)) == 4
    assert len(list(jobs_dir.glob("*/batch.json"))) == 1


@pytest.mark.slow
@needs_cluster
@pytest.mark.skipif(
    "BENCH_TEST_POSTGRES" not in os.environ,
    reason="needs a PostgreSQL server: .ci/run starts one and sets BENCH_TEST_POSTGRES",
)
def test_a_two_worker_sweep_on_slurm_shares_one_postgres_study(
    tiny_project: Path, tmp_path: Path, one_thread: None
) -> None:
    url = os.environ["BENCH_TEST_POSTGRES"]
    study_name = "tiny/ce+crt"
    with contextlib.suppress(KeyError):  # no study left by an earlier run of this test
        optuna.delete_study(study_name=study_name, storage=url)
    argv = ["sweep", "--method", "ce+crt", "--dataset", "tiny", "--n-trials", "4"]
    argv += ["--storage", url, "--results-dir", str(tmp_path / "results"), "--device", "cpu"]
    argv += ["--no-progress", "--executor", "slurm", "--jobs", "2", "--threads", "1"]
    assert main(argv) == 0
    trials = optuna.load_study(study_name=study_name, storage=url).trials
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4
    logs = list((tmp_path / "results" / "tiny" / "sweeps" / "jobs").glob("*/slurm/*.out"))
    assert len(logs) == 2  # one per worker; between them they ran every trial
    assert sum(len(re.findall(r"^trial \d+: ", p.read_text(), re.M)) for p in logs) >= 4


def test_a_sweep_with_workers_needs_a_shared_storage(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sweep", "--method", "ce+crt", "--dataset", "tiny", "--jobs", "2"]
    assert main([*argv, "--results-dir", str(tmp_path)]) == 2
    assert "--storage journal" in capsys.readouterr().err


@pytest.mark.slow
def test_a_two_worker_local_sweep_shares_one_journal(
    tiny_project: Path, tmp_path: Path, one_thread: None
) -> None:
    results = tmp_path / "results"
    argv = ["sweep", "--method", "ce+crt", "--dataset", "tiny", "--n-trials", "4"]
    argv += ["--storage", "journal", "--results-dir", str(results), "--device", "cpu"]
    assert main([*argv, "--no-progress", "--jobs", "2", "--threads", "1"]) == 0
    journal = results / "tiny" / "sweeps" / "ce+crt.journal"
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    trials = optuna.load_study(study_name="tiny/ce+crt", storage=storage).trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 4
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    logs = list((results / "tiny" / "sweeps" / "jobs").glob("*/logs/task-*.log"))
    assert len(logs) == 2


def test_a_worker_refuses_a_unit_whose_run_ids_it_cannot_reproduce(
    tiny_project: Path, tmp_path: Path
) -> None:
    options = RunOptions("tiny", seeds=(0,), results_dir=tmp_path, progress=False)
    runs = plan(options, get_spec("tiny"), MethodRegistry().expand("ce"), torch.device("cpu"))
    [unit] = group_units(runs, options, tmp_path)
    assert [r.run_id for r in rebuild_runs(unit)] == list(unit.run_ids)
    other = dataclasses.replace(unit, run_ids=("ce-d0-s0-0000000000",))  # other data or code
    with pytest.raises(BenchError, match="sees other data or another version of the code"):
        rebuild_runs(other)


def test_threads_default_to_the_cpus_a_worker_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    # A machine of 64 CPUs of which this process may run on 12 (a cgroup's or taskset's mask).
    monkeypatch.setattr(executor_options.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(
        executor_options.os, "sched_getaffinity", lambda pid: set(range(12)), raising=False
    )
    assert usable_cpus() == 12
    workers = {jobs: ExecutorOptions(jobs=jobs).threads_per_worker() for jobs in (2, 3, 5, 12, 16)}
    assert workers == {2: 6, 3: 4, 5: 2, 12: 1, 16: 1}  # shared out, never below one
    assert ExecutorOptions().threads_per_worker() is None  # this process: torch's default
    assert ExecutorOptions(name="slurm", jobs=32).threads_per_worker() is None  # the job's CPUs
    assert ExecutorOptions(jobs=2, threads=3).threads_per_worker() == 3
    assert ExecutorOptions(name="slurm", jobs=2, threads=3).threads_per_worker() == 3


def test_each_local_worker_slot_gets_its_own_gpu_of_those_visible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processes, "visible_gpus", lambda: ["2", "3"])  # a user's mask
    executor = ProcessExecutor(ExecutorOptions(jobs=3))
    pinned = [executor._environment(slot)["CUDA_VISIBLE_DEVICES"] for slot in range(3)]
    assert pinned == ["2", "3", "2"]


def _fake_slurm(
    monkeypatch: pytest.MonkeyPatch, queue: dict[str, str] | None, ended: dict[str, str]
) -> None:
    """SLURM's commands answering from `queue` (squeue; None: squeue fails) and `ended`
    (scontrol's JobState of ended jobs it still remembers)."""

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        if command[0] == "squeue":
            if queue is None:
                return subprocess.CompletedProcess(command, 1, "", "slurm_load_jobs error")
            lines = "".join(f"{job}|{state}\n" for job, state in queue.items())
            return subprocess.CompletedProcess(command, 0, lines, "")
        if command[0] == "scontrol" and command[-1] in ended:
            state, _, code = ended[command[-1]].partition(" ")
            text = f"JobId={command[-1]} JobState={state} ExitCode={code or '0:15'}"
            return subprocess.CompletedProcess(command, 0, text, "")
        return subprocess.CompletedProcess(command, 1, "", "Invalid job id specified")

    monkeypatch.setattr(slurm, "_run", run)
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)  # no sacct


def test_slurm_states_come_from_results_the_queue_and_scontrol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [
        Job(i, f"unit-{i}", f"7_{i}", tmp_path / f"{i}.log", tmp_path / f"{i}.json")
        for i in range(6)
    ]
    jobs[0].result.write_text(json.dumps({"ok": True, "value": {}}))
    jobs[1].result.write_text(json.dumps({"ok": False, "error": "BenchError: bad data"}))
    ended = {"7_4": "TIMEOUT", "7_5": "FAILED 140:0"}  # 7_5: ended by the warning signal
    _fake_slurm(monkeypatch, {"7_2": "PENDING", "7_3": "RUNNING"}, ended)
    states = SlurmWatcher(time_limit=30).states(jobs)
    assert [states[j.uid].state for j in jobs] == [
        "done", "failed", "pending", "running", "failed", "failed",
    ]  # fmt: skip
    assert "time limit (30 min)" in states[jobs[5].uid].detail
    assert "BenchError: bad data" in states[jobs[1].uid].detail
    assert "time limit (30 min); raise --slurm-time" in states[jobs[4].uid].detail
    assert str(jobs[4].log) in states[jobs[4].uid].detail


def test_a_slurm_job_gone_without_a_result_fails_after_a_grace_and_a_failing_squeue_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = Job(0, "unit", "8_0", tmp_path / "log", tmp_path / "result.json")
    clock = [0.0]
    monkeypatch.setattr(slurm.time, "monotonic", lambda: clock[0])
    watcher = SlurmWatcher(time_limit=60, grace=0.3)
    _fake_slurm(monkeypatch, {"8_0": "PENDING"}, {})
    assert watcher.states([job])[job.uid].state == "pending"
    _fake_slurm(monkeypatch, None, {})  # squeue fails: nothing learnt
    assert watcher.states([job])[job.uid].state == "pending"
    _fake_slurm(monkeypatch, {}, {})  # gone, unknown to scontrol: its result may yet show
    assert watcher.states([job])[job.uid].state == "running"
    clock[0] = 0.25  # within the grace
    assert watcher.states([job])[job.uid].state == "running"
    clock[0] = 0.4  # past it
    state = watcher.states([job])[job.uid]
    assert state.state == "failed" and "without writing a result" in state.detail
    # A rerun follows only what the queue still lists, never a job it cannot see.
    assert watcher.queued_or_running([job]) == []
    _fake_slurm(monkeypatch, {"8_0": "RUNNING"}, {})
    assert watcher.queued_or_running([job]) == [job]
    _fake_slurm(monkeypatch, None, {})  # nor a guess when the queue cannot be read
    with pytest.raises(BenchError, match="squeue failed"):
        watcher.queued_or_running([job])


def test_following_slurm_jobs_stops_when_squeue_fails_past_its_patience(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = Job(0, "unit", "9_0", tmp_path / "log", tmp_path / "result.json")
    clock = [0.0]
    monkeypatch.setattr(slurm.time, "monotonic", lambda: clock[0])
    watcher = SlurmWatcher(time_limit=60, patience=600)
    _fake_slurm(monkeypatch, None, {})
    assert watcher.states([job])[job.uid].state == "pending"
    clock[0] = 500
    _fake_slurm(monkeypatch, {"9_0": "RUNNING"}, {})  # an answer resets the patience
    assert watcher.states([job])[job.uid].state == "running"
    _fake_slurm(monkeypatch, None, {})
    assert watcher.states([job])[job.uid].state == "running"  # the last state known
    clock[0] = 1000  # 1000 s since the first failure, 500 s since the answer
    assert watcher.states([job])[job.uid].state == "running"
    clock[0] = 1101
    with pytest.raises(BenchError, match="squeue has failed for 600 s"):
        watcher.states([job])
