"""`bench sweep`: search spaces from recipes, a tiny study, resume after a kill, export and
re-run, an objective blind to test labels, and two workers sharing a PostgreSQL study."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
import torch
from conftest import load_images, run_tiny
from optuna.trial import TrialState

from bench.cli.main import main
from bench.components.settings import TrainingSettings
from bench.core.errors import BenchError, TrainingDiverged
from bench.data.specs import get_spec
from bench.experiment.experiment import Experiment, settings_for
from bench.recipes.methods import MethodRegistry, Tuning
from bench.run.plan import RunOptions, plan, tuning_notes
from bench.stage1.artefacts import ArtefactCache
from bench.sweep import callbacks
from bench.sweep.callbacks import StopAfterFailures, WaitForPlace
from bench.sweep.objective import make_objective, pruner
from bench.sweep.opening import open_study
from bench.sweep.options import SweepOptions
from bench.sweep.records import BEFORE_RULES, recorded_settings, settle_conditions
from bench.sweep.space import applied, search_space
from bench.sweep.storage import masked, open_storage
from bench.sweep.trials import fail_dead_trials, mark_begun

SPACE = '[search]\n"stage2.lr" = { low = 0.01, high = 0.5, log = true }\n'


def _sweep(results: Path, *extra: str) -> list[str]:
    return [
        "sweep", "--method", "ce+crt", "--dataset", "tiny", "--results-dir", str(results),
        "--device", "cpu", "--no-progress", *extra,
    ]  # fmt: skip


def test_search_space_is_read_from_both_recipes(tiny_project: Path) -> None:
    space = {d.path: d.distribution for d in search_space(MethodRegistry().get("supcon+crt"))}
    assert space["metric.temperature"] == optuna.distributions.FloatDistribution(
        0.05, 0.5, log=True
    )
    assert space["stage2.min_steps"] == optuna.distributions.CategoricalDistribution(
        [500, 1000, 2000, 4000]
    )
    assert set(space) == {"metric.weight", "metric.temperature", "stage2.lr", "stage2.min_steps"}
    (tiny_project / "space.toml").write_text(SPACE)
    only = search_space(MethodRegistry().get("ce+crt"), tiny_project / "space.toml")
    assert [d.path for d in only] == ["stage2.lr"]
    # A trial's values are set in the recipe that holds their table; a stranger is an error.
    stage1, stage2 = applied(MethodRegistry().get("supcon+crt"), {"metric.weight": 0.3,
                                                                   "stage2.lr": 0.01})  # fmt: skip
    assert (stage1["metric"]["weight"], stage2["stage2"]["lr"]) == (0.3, 0.01)
    assert "search" not in stage1 and "search" not in stage2
    with pytest.raises(BenchError, match=r"supcon\+crt: 'optim\.lr' names no table"):
        applied(MethodRegistry().get("supcon+crt"), {"optim.lr": 0.1})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('"metric.nothing" = { low = 0, high = 1 }', r"'metric\.nothing' must name a field"),
        ('"loss.name" = { low = 2, high = 1 }', r"'loss\.name' needs numbers low < high"),
        ('"loss.name" = { choices = [] }', r"choices = \[\.\.\.\] stands alone"),
    ],
)
def test_bad_search_table_names_the_file(tiny_project: Path, table: str, message: str) -> None:
    (tiny_project / "methods" / "ce.toml").write_text(
        'description = "x"\n[loss]\nname = "ce"\n[search]\n' + table + "\n"
    )
    with pytest.raises(BenchError, match=message) as error:
        search_space(MethodRegistry().get("ce"))
    assert "ce.toml" in str(error.value)


@pytest.mark.slow
def test_three_trial_sweep_exports_a_recipe_that_runs(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tiny_project / "space.toml").write_text(SPACE)
    results = tmp_path / "results"
    argv = _sweep(results, "--n-trials", "3", "--space", str(tiny_project / "space.toml"))
    argv += ["--seed", "0"]
    assert main([*argv, "--export"]) == 0
    out = capsys.readouterr().out
    study = optuna.load_study(
        study_name="tiny/ce+crt", storage=f"sqlite:///{results}/tiny/sweeps/ce+crt.db"
    )
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3 and [t.number for t in study.trials] == [0, 1, 2]
    for name in ("history", "importances", "parallel"):
        assert (results / "tiny" / "sweeps" / "ce+crt-plots" / f"{name}.png").stat().st_size > 0
    tuned = tiny_project / "methods" / "tuned" / "ce+crt-tiny.toml"
    assert f"exported: {tuned}" in out
    exported = tuned.read_text()
    assert f"trial = {study.best_trial.number}" in exported
    assert f"lr = {study.best_trial.params['stage2.lr']!r}" in exported

    runs = tmp_path / "runs"
    rerun = ["run", "--methods", "tuned/ce+crt-tiny", "--dataset", "tiny", "--seeds", "0"]
    rerun += ["--results-dir", str(runs), "--device", "cpu", "--no-progress", "--no-report"]
    assert main(rerun) == 0
    (record,) = [json.loads(p.read_text()) for p in runs.glob("tiny/runs/*/run.json")]
    assert record["config"]["method"]["name"] == "tuned/ce+crt-tiny"
    assert record["config"]["method"]["stage2"]["lr"] == study.best_trial.params["stage2.lr"]
    # Asking again for the same number of trials only exports: the study is complete.
    assert main([*argv, "--export"]) == 0
    assert "3 trial(s) finished, 0 to go" in capsys.readouterr().out
    assert len(optuna.load_study(study_name="tiny/ce+crt", storage=study._storage).trials) == 3


def _completed_trials(db: Path) -> int:
    """Completed trials in a study database, read without creating anything in it (opening it
    through Optuna while the worker creates its tables would race with the worker)."""
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            query = "SELECT count(*) FROM trials WHERE state = 'COMPLETE'"
            return int(connection.execute(query).fetchone()[0])
    except sqlite3.OperationalError:  # tables not created yet, or the database is locked
        return 0


def _running_trials(db: Path) -> int:
    """Running trials in a study database, read as `_completed_trials` reads."""
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            query = "SELECT count(*) FROM trials WHERE state = 'RUNNING'"
            return int(connection.execute(query).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _age_running_trials(db: Path) -> int:
    """Move the start and the last heartbeat of every running trial in a SQLite study an hour
    back, as if its worker had created it and beaten last then: what waiting out the grace
    does to a dead worker's trials, at once. Returns how many trials were aged."""
    running = "SELECT trial_id FROM trials WHERE state = 'RUNNING'"
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        aged = connection.execute(
            f"UPDATE trials SET datetime_start = datetime(datetime_start, '-1 hour') "
            f"WHERE trial_id IN ({running})"
        ).rowcount
        connection.execute(
            f"UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, '-1 hour') "
            f"WHERE trial_id IN ({running})"
        )
    return aged


@pytest.mark.slow
def test_resume_after_the_worker_is_killed(tiny_project: Path, tmp_path: Path) -> None:
    (tiny_project / "space.toml").write_text(SPACE)
    results = tmp_path / "results"
    # Trials after the first reuse its cached stage 1 and take a fraction of a second: ask for
    # enough of them that the worker is still busy when it is killed.
    argv = _sweep(results, "--n-trials", "25", "--space", str(tiny_project / "space.toml"))
    argv += ["--heartbeat", "1"]
    storage = f"sqlite:///{results}/tiny/sweeps/ce+crt.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    db = results / "tiny" / "sweeps" / "ce+crt.db"
    worker = subprocess.Popen([sys.executable, "-m", "bench.cli.main", *argv], env=env)
    # Killed in a trial, after at least one: stopped while its database is looked at, so that
    # what is seen is what the kill leaves (between two trials none is running).
    deadline = time.monotonic() + 300
    completed = 0
    try:
        while time.monotonic() < deadline and worker.poll() is None:
            worker.send_signal(signal.SIGSTOP)
            completed = _completed_trials(db)
            if completed and _running_trials(db):
                break
            worker.send_signal(signal.SIGCONT)
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert 1 <= completed < 25
    at_kill = optuna.load_study(study_name="tiny/ce+crt", storage=storage).trials
    interrupted = [t.number for t in at_kill if t.state == TrialState.RUNNING]
    assert len(interrupted) == 1  # one worker, one trial at a time
    assert _age_running_trials(db) == 1  # as past the 2-second grace: the trial is stale
    assert main(argv) == 0
    trials = optuna.load_study(study_name="tiny/ce+crt", storage=storage).trials
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 25
    assert TrialState.RUNNING not in states
    assert trials[interrupted[0]].state == TrialState.FAIL  # failed, not lost


def test_a_worker_killed_as_its_trial_begins_leaves_a_trial_that_is_failed(tmp_path: Path) -> None:
    # The objective's first step, then nothing: the worker is killed before Optuna's heartbeat
    # thread writes. Such a trial once stayed running for ever, and a resumed sweep waited on it.
    storage = open_storage(None, tmp_path, "study", heartbeat=1)
    study = optuna.create_study(study_name="s", storage=storage)
    begun = study.ask()
    mark_begun(begun, "killed", storage)
    study.ask()  # killed before its objective began
    assert _age_running_trials(tmp_path / "study.db") == 2  # as past the 2-second grace
    live = study.ask()
    mark_begun(live, "alive", storage)
    fail_dead_trials(study, storage, heartbeat=1)
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.FAIL, TrialState.RUNNING]
    assert study.trials[0].user_attrs["worker"] == "killed"


def test_in_a_journal_an_unbegun_trial_is_failed_and_a_requeued_worker_fails_its_own(
    tiny_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A journal has no heartbeats: a trial created by a worker killed before the objective's
    # first step names no worker, and once waited for ever; a job requeued under its tag
    # finds its earlier run's trial still running.
    options = SweepOptions("tiny", "ce+crt", storage="journal", results_dir=tmp_path)
    requeued = dataclasses.replace(options, worker="batch/0")
    opened = open_study(requeued)
    study, storage = opened.study, opened.storage
    study.ask()  # its worker was killed before the objective began
    own, others = study.ask(), study.ask()
    mark_begun(own, "batch/0", storage)
    mark_begun(others, "batch/1", storage)

    class AnHourLater(datetime):  # a journal keeps its own times: the sweep's clock moves on
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return datetime.now(tz) + timedelta(hours=1)

    # Well past the 2-second grace.
    monkeypatch.setattr("bench.sweep.trials.datetime", AnHourLater)
    fail_dead_trials(study, storage, heartbeat=1)
    running = TrialState.RUNNING
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, running, running]
    open_study(requeued)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.FAIL, running]


@pytest.mark.slow
def test_objective_never_reads_test_labels(tiny_project: Path) -> None:
    spec = get_spec("tiny")
    method = MethodRegistry().get("ce+crt")
    settings = settings_for(spec, method).settings
    imageset = load_images(spec, settings.image_size)
    split = spec.split(imageset, 0)
    # Scrambled test labels: anything scored on them would rank the trials differently.
    scrambled = imageset.labels.clone()
    scrambled[split.test] = torch.flip(scrambled[split.test], [0]) % imageset.num_classes
    variants = [imageset, dataclasses.replace(imageset, labels=scrambled)]
    space = search_space(method, None)
    values = []
    for variant in variants:
        study = optuna.create_study(direction="maximize")
        for lr in (0.01, 0.3):
            study.enqueue_trial({"stage2.lr": lr, "stage2.min_steps": 500})
        cache = ArtefactCache(Path(os.environ["BENCH_CACHE_DIR"]) / f"v{len(values)}")
        experiment = Experiment(
            spec=spec,
            imageset=variant,
            split=split,
            settings=settings,
            device=torch.device("cpu"),
            cache=cache,
        )
        objective = make_objective([experiment], method, space, 2)
        study.optimize(objective, n_trials=2)
        values.append([t.value for t in study.trials])
    assert values[0] == values[1]
    assert not torch.equal(variants[0].labels[split.test], variants[1].labels[split.test])


@pytest.mark.slow
@pytest.mark.skipif(
    "BENCH_TEST_POSTGRES" not in os.environ,
    reason="needs a PostgreSQL server: .ci/run starts one and sets BENCH_TEST_POSTGRES",
)
def test_two_workers_share_one_postgres_study(tiny_project: Path, tmp_path: Path) -> None:
    (tiny_project / "space.toml").write_text(SPACE)
    url = os.environ["BENCH_TEST_POSTGRES"]
    study_name = "tiny/ce+crt"
    with contextlib.suppress(KeyError):  # left by an earlier run of this test
        optuna.delete_study(study_name=study_name, storage=url)
    argv = _sweep(tmp_path / "results", "--n-trials", "6", "--storage", url)
    argv += ["--space", str(tiny_project / "space.toml")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The images cached first: neither worker then waits on the other's decoding claim, so
    # both start trials at once (tiny trials are fast enough for one worker to do all six).
    load_images(get_spec("tiny"), 16, progress=False)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.cli.main", *argv],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in "ab"
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    assert all(re.search(r"^trial \d+: ", out, re.M) for out in outputs)  # both worked
    trials = optuna.load_study(study_name=study_name, storage=url).trials
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 6
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))


@pytest.mark.slow
def test_several_methods_one_study_each_in_a_journal(tiny_project: Path, tmp_path: Path) -> None:
    (tiny_project / "space.toml").write_text(SPACE)  # stage2.lr: a field of crt and of lws
    results = tmp_path / "results"
    argv = ["sweep", "--methods", "ce+crt,ce+lws", "--dataset", "tiny", "--n-trials", "2"]
    argv += ["--storage", "journal", "--space", str(tiny_project / "space.toml")]
    argv += ["--results-dir", str(results), "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    for method in ("ce+crt", "ce+lws"):
        journal = results / "tiny" / "sweeps" / f"{method}.journal"
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))
        )
        trials = optuna.load_study(study_name=f"tiny/{method}", storage=storage).trials
        assert [t.state for t in trials].count(TrialState.COMPLETE) == 2


@pytest.mark.slow
def test_a_sweep_tunes_at_the_run_settings_and_its_export_records_them(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tiny_project / "space.toml").write_text(SPACE)
    results = tmp_path / "results"
    base = _sweep(results, "--n-trials", "1", "--space", str(tiny_project / "space.toml"))
    base += ["--batch-size", "32", "--data-seeds", "0,1"]
    assert main([*base, "--epochs", "1", "--export"]) == 0
    exported = tomllib.loads((tiny_project / "methods/tuned/ce+crt-tiny.toml").read_text())
    assert exported["settings"]["epochs"] == 1 and exported["settings"]["batch_size"] == 32
    assert exported["settings"]["image_size"] == 16  # the spec's, as the sweep trained
    assert exported["tuned"]["data_seeds"] == [0, 1]
    # Resuming at other settings would mix incomparable trials: refused, with what differs.
    capsys.readouterr()
    assert main([*base, "--epochs", "2"]) == 2
    assert "was run at {'epochs': 1}" in capsys.readouterr().err

    runs = tmp_path / "runs"
    rerun = ["run", "--methods", "tuned/ce+crt-tiny", "--dataset", "tiny", "--seeds", "0"]
    rerun += ["--results-dir", str(runs), "--device", "cpu", "--no-progress", "--no-report"]
    assert main(rerun) == 0
    assert "command line" not in capsys.readouterr().out
    assert main([*rerun, "--epochs", "2"]) == 0
    assert (
        "tuned/ce+crt-tiny: tuned with epochs = 1; the command line's 2 is used"
        in capsys.readouterr().out
    )
    records = [json.loads(p.read_text()) for p in runs.glob("tiny/runs/*/run.json")]
    assert sorted(r["config"]["training"]["epochs"] for r in records) == [1, 2]
    assert {r["config"]["training"]["batch_size"] for r in records} == {32}


def _manifest(folder: Path, digest: str) -> dict:
    return json.loads((folder / f"split-{digest}.json").read_text())


@pytest.mark.slow
def test_a_study_is_bound_to_its_splits_and_runs_count_test_items_it_was_tuned_on(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tiny_project / "space.toml").write_text(SPACE)
    results = tmp_path / "results"

    def sweep(n_trials: int) -> list[str]:
        space = str(tiny_project / "space.toml")
        return _sweep(results, "--n-trials", str(n_trials), "--space", space, "--epochs", "1")

    assert main([*sweep(1), "--export"]) == 0
    tuned = tomllib.loads((tiny_project / "methods/tuned/ce+crt-tiny.toml").read_text())
    digests = tuned["tuned"]["split_digests"]
    assert list(digests) == ["0"]
    tuning = _manifest(results / "tiny" / "splits", digests["0"])
    assert tuning["data_seed"] == 0  # the digest names the manifest of the split scored

    # Run at data seeds 0 and 1: seed 0's test split is disjoint from its own validation
    # split; seed 1's test split holds some of the items whose labels chose the values.
    runs = tmp_path / "runs"
    capsys.readouterr()
    assert run_tiny(runs, "tuned/ce+crt-tiny", "--data-seeds", "0,1", "--epochs", "1") == 0
    out = capsys.readouterr().out
    chosen_on = set(tuning["items"]["val"])
    counts = {}
    for manifest in (runs / "tiny" / "splits").glob("split-*.json"):
        split = json.loads(manifest.read_text())
        test = set(split["items"]["test"])
        counts[split["data_seed"]] = (len(chosen_on & test), len(test))
    assert counts[0][0] == 0 and counts[1][0] > 0
    assert f"data seed 1: {counts[1][0]} of {counts[1][1]}" in out
    assert "data seed 0:" not in out
    # A pool that runs the tuned method at data seed 0 alone says nothing of seed 1's test.
    only = frozenset({("tuned/ce+crt-tiny", 0, 0)})
    options = RunOptions("tiny", "tuned/ce+crt-tiny", (0,), (0, 1), results_dir=runs, cells=only)
    methods = MethodRegistry().expand("tuned/ce+crt-tiny")
    planned = plan(options, get_spec("tiny"), methods, torch.device("cpu"))
    assert [run.experiment.split.data_seed for run in planned] == [0]
    assert "data seed 1:" not in capsys.readouterr().out

    # The dataset now draws other splits: resuming the study would mix validation sets.
    spec = tiny_project / "datasets" / "tiny.toml"
    spec.write_text(spec.read_text().replace("val = 0.2", "val = 0.25"))
    capsys.readouterr()
    assert main(sweep(2)) == 2
    assert "but the splits drawn now are" in capsys.readouterr().err
    assert run_tiny(runs, "tuned/ce+crt-tiny", "--epochs", "1", "--no-report") == 0
    assert "that the dataset no longer draws" in capsys.readouterr().out


def test_test_items_count_as_tuned_on_only_when_they_were_validation_items(
    tiny_project: Path,
) -> None:
    spec = dataclasses.replace(get_spec("tiny"), kept_splits=("test",))
    drawn = load_images(spec, 16, progress=False)
    fixed_test = tuple("test" if i % 4 == 0 else "train" for i in range(len(drawn.labels)))
    kept = dataclasses.replace(drawn, given_splits=fixed_test)
    method = dataclasses.replace(
        MethodRegistry().get("ce+crt"), label="tuned/x", tuning=Tuning({}, (0, 1))
    )
    for imageset, leaks in ((drawn, True), (kept, False)):
        splits = [spec.split(imageset, seed) for seed in range(4)]
        notes = tuning_notes(method, spec, imageset, splits)
        assert bool(notes) is leaks, notes
    assert all(split.test.tolist() == splits[0].test.tolist() for split in splits)
    # Values chosen on another dataset never saw this one's labels.
    elsewhere = dataclasses.replace(method, tuning=Tuning({}, (0, 1), {0: "x"}, "skin"))
    assert tuning_notes(elsewhere, spec, drawn, [spec.split(drawn, 1)]) == []


def test_the_pruner_stops_the_bottom_quarter_only() -> None:
    study = optuna.create_study(direction="maximize", pruner=pruner(epochs=8))
    for value in (0.50, 0.60, 0.70, 0.80, 0.90, 0.55, 0.65, 0.75):  # finished trials
        study.add_trial(
            optuna.trial.create_trial(
                value=value,
                intermediate_values={epoch: value for epoch in range(1, 9)},
                distributions={},
                params={},
            )
        )

    def pruned_at(value: float, epoch: int) -> bool:
        trial = study.ask()
        for step in range(1, epoch + 1):
            trial.report(value, step)
        decision = trial.should_prune()
        study.tell(trial, state=TrialState.FAIL)
        return decision

    # The 25th percentile of the finished trials at each epoch is 0.5875.
    assert pruned_at(0.56, epoch=4) and not pruned_at(0.60, epoch=4)
    assert not pruned_at(0.56, epoch=3)  # before the second half nothing is pruned
    assert not pruned_at(0.65, epoch=6)  # in the middle of the field: kept (the median is 0.675)


def test_a_refused_database_connection_never_shows_the_password(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://bench:hunter2@127.0.0.1:1/db"  # nothing listens on port 1
    assert main(_sweep(tmp_path, "--n-trials", "1", "--storage", url)) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "bench:***@127.0.0.1:1/db" in err and err.count("\n") == 1


@pytest.mark.slow
def test_diverging_trials_fail_and_the_sweep_stops_with_exit_1(
    tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _sweep(tmp_path, "--n-trials", "2", "--lr", "1000", "--space")
    (tiny_project / "space.toml").write_text(SPACE)
    assert main([*argv, str(tiny_project / "space.toml")]) == 1
    out = capsys.readouterr().out
    assert "trial 0: fail" in out and "failed in a row; stopped" in out
    study = optuna.load_study(
        study_name="tiny/ce+crt", storage=f"sqlite:///{tmp_path}/tiny/sweeps/ce+crt.db"
    )
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql://bench:p@ss@127.0.0.1:1/db", "p@ss"),
        ("postgresql://127.0.0.1:1/db?user=bench&password=s3cret", "s3cret"),
    ],
)
def test_passwords_in_other_url_forms_are_masked_too(url: str, secret: str) -> None:
    text = masked(f"cannot open storage {url!r}: refused ({secret})", url)
    assert secret not in text and "***" in text


def test_a_study_recorded_before_the_checkpoint_rules_resumes_under_the_old_protocol() -> None:
    # Its settings lack min_steps and checkpoint: its trials ran without a step floor and kept
    # the best-validation epoch, so that is what resuming (or exporting) it means.
    study = optuna.create_study(direction="maximize")
    old = {k: v for k, v in TrainingSettings().as_dict().items() if k not in BEFORE_RULES}
    study.set_user_attr("settings", old)
    study.set_user_attr("data_seeds", [0])
    assert recorded_settings(study)["checkpoint"] == "best"
    settle_conditions(study, TrainingSettings(min_steps=0, checkpoint="best"), (0,))
    with pytest.raises(BenchError, match=r"'min_steps': 0, 'checkpoint': 'best'"):
        settle_conditions(study, TrainingSettings(), (0,))


class _Clock:
    """`time` for `bench.sweep.callbacks`: a sleep moves the clock on and lets other workers
    act (`others`, called with the number of the sleep), at once."""

    def __init__(self, others) -> None:  # type: ignore[no-untyped-def]
        self.now, self.sleeps, self.others = 0.0, 0, others

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        self.others(self.sleeps)


def _study_with(states: list[TrialState]) -> optuna.Study:
    """An in-memory study whose trials are in `states`, the running ones begun by another
    worker."""
    study = optuna.create_study(direction="maximize")
    for state in states:
        trial = study.ask()
        mark_begun(trial, "other", None)
        if state != TrialState.RUNNING:
            study.tell(trial, 0.5 if state == TrialState.COMPLETE else None, state=state)
    return study


def test_a_worker_waits_for_the_running_trials_of_others_rather_than_start_a_surplus_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Three trials wanted, one finished, two running elsewhere: no place, until one fails.
    study = _study_with([TrialState.COMPLETE, TrialState.RUNNING, TrialState.RUNNING])

    def others(sleep: int) -> None:  # the second running trial fails after two polls
        if sleep == 2:
            study.tell(2, state=TrialState.FAIL)

    clock = _Clock(others)
    monkeypatch.setattr(callbacks, "time", clock)
    place = WaitForPlace(3, study._storage, heartbeat=60, deadline=float("inf"))
    assert place.place_open(study) and clock.sleeps == 2
    assert len(study.trials) == 3  # nothing created while waiting
    assert "waiting for 2 running trial(s)" in capsys.readouterr().out

    # Once the others finish the budget, the worker stops without a trial of its own.
    def finish(sleep: int) -> None:
        study.tell(1, 0.6)

    monkeypatch.setattr(callbacks, "time", _Clock(finish))
    stops = []
    monkeypatch.setattr(study, "stop", lambda: stops.append(True))
    study.tell(study.ask(), 0.5)  # the place is taken: three finished or running again
    place(study, study.trials[-1])
    assert stops == [True]


def test_waiting_for_others_ends_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    study = _study_with([TrialState.RUNNING])
    clock = _Clock(lambda sleep: None)
    monkeypatch.setattr(callbacks, "time", clock)
    assert not WaitForPlace(1, study._storage, heartbeat=60, deadline=12.0).place_open(study)
    assert clock.now == 12.0 and clock.sleeps == 3  # polled every 5 s, the last one shorter


def test_a_worker_stops_after_n_failed_trials_in_a_row_only() -> None:
    outcomes = iter([1.0, "fail", "fail", 2.0, "fail", "fail", "fail", 3.0])

    def objective(trial: optuna.Trial) -> float:
        outcome = next(outcomes)
        if outcome == "fail":
            raise TrainingDiverged("diverged")
        return float(outcome)

    study = optuna.create_study(direction="maximize")
    failures = StopAfterFailures(3)
    study.optimize(objective, catch=(TrainingDiverged,), callbacks=[failures])
    assert [t.state for t in study.trials].count(TrialState.FAIL) == 5
    assert len(study.trials) == 7 and failures.reached()
