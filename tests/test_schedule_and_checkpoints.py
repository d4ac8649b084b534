"""The stage-1 schedule (a floor of optimiser steps) and the checkpoint rules: hand-computed
schedules, the rules on a validation curve with one spike, the trainer loading the kept
epoch's weights, and plain `ce` at the defaults learning a small image folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import bench.stage1.training
from bench.cli.main import main
from bench.components.catalogue import LOSSES, SAMPLERS
from bench.components.checkpoints import CHECKPOINT_RULES, HEAD_SCORE, NCM_SCORE, kept_epoch
from bench.components.models import build_classifier
from bench.components.settings import TrainingSettings, check_settings
from bench.core.errors import BenchError
from bench.stage1.schedule import Schedule, lr_at
from bench.stage1.training import Objective, Training, train_stage1

# Issue 19's SupCon stage 1 (seed 1): one spike at epoch 7, above every later epoch.
SPIKE = [0.14, 0.16, 0.24, 0.26, 0.24, 0.25, 0.50, 0.35, 0.43]
SPIKE += [0.42, 0.44, 0.46, 0.43, 0.47, 0.45, 0.46, 0.47, 0.47]


def test_a_small_training_set_is_stretched_to_the_step_floor() -> None:
    # 546 images at batch 128: 4 full batches and one of 34, so 5 steps an epoch; 20 epochs
    # are 100 steps, so 100 epochs reach the 500-step floor; warm-up keeps 1/20 of training.
    settings = TrainingSettings(epochs=20, batch_size=128, warmup_epochs=1, min_steps=500)
    schedule = Schedule.plan(546, settings)
    assert (schedule.steps_per_epoch, schedule.epochs, schedule.total_steps) == (5, 100, 500)
    assert schedule.warmup_steps == 25 and schedule.stretched
    # The floor stretches to whole epochs: 501 steps need a 101st epoch.
    assert Schedule.plan(546, TrainingSettings(epochs=20, min_steps=501)).epochs == 101


def test_a_large_training_set_keeps_its_epochs() -> None:
    # 2400 images at batch 64: 37 full batches and one of 32, 38 steps; 18 epochs are 684.
    settings = TrainingSettings(epochs=18, batch_size=64, warmup_epochs=1, min_steps=500)
    schedule = Schedule.plan(2400, settings)
    assert (schedule.epochs, schedule.total_steps, schedule.warmup_steps) == (18, 684, 38)
    assert not schedule.stretched
    assert Schedule.plan(546, TrainingSettings(epochs=20, min_steps=0)).epochs == 20


def test_the_learning_rate_decays_over_the_steps_actually_run() -> None:
    schedule = Schedule.plan(546, TrainingSettings(epochs=20, lr=0.1, min_steps=500))
    assert schedule.lr(0, 0.1) == pytest.approx(0.1 / 25)
    assert schedule.lr(24, 0.1) == pytest.approx(0.1)
    assert schedule.lr(499, 0.1) == pytest.approx(lr_at(499, 500, 25, 0.1))
    assert schedule.lr(499, 0.1) < 1e-5  # the cosine reaches zero at the 500th step
    assert schedule.lr(262, 0.1) == pytest.approx(0.05 * (1 + math.cos(math.pi * 237 / 475)))


def test_settings_reject_an_unknown_rule_and_a_negative_floor() -> None:
    with pytest.raises(
        BenchError, match="'checkpoint' = 'peak' is not one of last, best, smoothed, ncm"
    ):
        check_settings({"checkpoint": "peak"}, "command line")
    with pytest.raises(BenchError, match="'min_steps' = -1 is out of range"):
        check_settings({"min_steps": -1}, "command line")


def _curve(head: list[float], ncm: list[float] | None = None) -> list[dict[str, float]]:
    return [
        {HEAD_SCORE: value, **({NCM_SCORE: ncm[i]} if ncm else {})} for i, value in enumerate(head)
    ]


def test_the_default_rule_does_not_keep_a_validation_spike() -> None:
    scores = _curve(SPIKE)
    assert TrainingSettings().checkpoint == "last"
    assert kept_epoch(CHECKPOINT_RULES["last"], scores) == 18
    assert kept_epoch(CHECKPOINT_RULES["best"], scores) == 7  # the old rule keeps the spike
    # Windows of five: the spike's window (3-7) averages .298, the last one (14-18) .464.
    assert kept_epoch(CHECKPOINT_RULES["smoothed"], scores) == 18


def test_smoothed_and_ncm_rules_follow_their_own_scores() -> None:
    # A plateau at epochs 4-8 beats every later window.
    head = [0.1, 0.2, 0.3, 0.6, 0.6, 0.6, 0.6, 0.6, 0.4, 0.5, 0.5, 0.5]
    assert kept_epoch(CHECKPOINT_RULES["smoothed"], _curve(head)) == 8
    # Fewer epochs than the window: the one window of all of them ends at the last epoch.
    assert kept_epoch(CHECKPOINT_RULES["smoothed"], _curve([0.9, 0.1, 0.2])) == 3
    ncm = [0.1, 0.3, 0.7, 0.2, 0.5, 0.7, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1]
    assert kept_epoch(CHECKPOINT_RULES["ncm"], _curve(head, ncm)) == 3


@pytest.mark.parametrize(("rule", "expected"), [("best", 7), ("last", 18), ("smoothed", 18)])
def test_the_trainer_loads_the_weights_of_the_epoch_its_rule_keeps(
    rule: str, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    curve = iter(SPIKE)
    monkeypatch.setattr(bench.stage1.training, "balanced_accuracy", lambda *args: next(curve))
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=generator)
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    torch.manual_seed(0)
    model = build_classifier("resnet-compact", 2)
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def snapshot(epoch: int, score: float) -> None:
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    settings = TrainingSettings(epochs=18, batch_size=4, min_steps=0, checkpoint=rule)
    objective = Objective(LOSSES["ce"](np.array([4, 4])), SAMPLERS["instance"])
    data, cpu = (images, labels), torch.device("cpu")
    outcome = train_stage1(
        Training(model, data, data, objective, settings, cpu, progress=False, on_epoch=snapshot)
    )
    assert outcome.kept_epoch == expected and outcome.schedule.epochs == 18
    kept = outcome.model.state_dict()
    assert all(torch.equal(kept[k], snapshots[expected][k]) for k in kept)
    if expected != 18:  # the kept weights are not the final ones
        assert not all(torch.equal(kept[k], snapshots[18][k]) for k in kept)


def test_every_watched_rule_keeps_its_own_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    # Comparing rules on one training loads each rule's weights in turn: the last epoch's
    # weights must not be the model's own, or loading the spike's overwrites them.
    curve = iter(SPIKE)
    monkeypatch.setattr(bench.stage1.training, "balanced_accuracy", lambda *args: next(curve))
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    model = build_classifier("resnet-compact", 2)
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def snapshot(epoch: int, score: float) -> None:
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    settings = TrainingSettings(epochs=18, batch_size=4, min_steps=0)
    objective = Objective(LOSSES["ce"](np.array([4, 4])), SAMPLERS["instance"])
    data, cpu = (images, labels), torch.device("cpu")
    outcome = train_stage1(
        Training(
            model, data, data, objective, settings, cpu,
            progress=False, on_epoch=snapshot, also_watch=("best", "smoothed"),
        )
    )  # fmt: skip
    kept = {rule: checkpoint.epoch for rule, checkpoint in outcome.checkpoints.items()}
    assert kept == {"last": 18, "best": 7, "smoothed": 18}
    for rule in ("best", "last", "smoothed"):
        outcome.model.load_state_dict(outcome.checkpoints[rule].state_dict)
    for rule, epoch in kept.items():
        state = outcome.checkpoints[rule].state_dict
        assert all(torch.equal(state[k], snapshots[epoch][k]) for k in state)


def test_the_last_epoch_rule_validates_once_and_trains_the_same_to_the_bit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Validating every epoch only for the history would cost a forward pass over the
    # validation set per epoch; under `last` nothing reads it, so only the last is validated,
    # and the weights are those of a training validated every epoch (a pruner watching).
    validated: list[int] = []
    score = bench.stage1.training._validation_scores

    def counted(training: Training, loop: object, rules: object, epoch: int) -> dict:
        validated.append(epoch)
        return score(training, loop, rules, epoch)  # type: ignore[arg-type]

    monkeypatch.setattr(bench.stage1.training, "_validation_scores", counted)
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    settings = TrainingSettings(epochs=4, batch_size=4, min_steps=0)

    def trained(**watch: object) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
        torch.manual_seed(0)
        model = build_classifier("resnet-compact", 2)
        objective = Objective(LOSSES["ce"](np.array([4, 4])), SAMPLERS["instance"])
        data, cpu = (images, labels), torch.device("cpu")
        training = Training(model, data, data, objective, settings, cpu, progress=False, **watch)
        outcome = train_stage1(training)  # type: ignore[arg-type]
        return outcome.model.state_dict(), outcome.history

    state, history = trained()
    assert validated == [4]
    assert [HEAD_SCORE in row for row in history] == [False, False, False, True]
    validated.clear()
    watched, watched_history = trained(on_epoch=lambda epoch, score: None)
    assert validated == [1, 2, 3, 4]
    assert all(torch.equal(state[k], watched[k]) for k in state)
    assert [row["train_loss"] for row in history] == [r["train_loss"] for r in watched_history]
    assert history[-1][HEAD_SCORE] == watched_history[-1][HEAD_SCORE]
    validated.clear()
    trained(also_watch=("best",))  # a rule that reads every epoch's score
    assert validated == [1, 2, 3, 4]


def _disc_or_ring_folder(root: Path, counts: dict[str, int], size: int = 32) -> Path:
    """A folder of `size`-pixel images, one sub-folder per class: a filled disc or a ring of
    the same outer radius, at a random place and brightness on a noisy background (the
    augmentation's rotations, flips and shifts leave the class visible)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size]
    for label, count in counts.items():
        (root / label).mkdir(parents=True)
        for i in range(count):
            cy, cx = rng.uniform(0.4, 0.6, 2) * size
            radius = np.hypot(y - cy, x - cx)
            shape = radius < 0.3 * size
            if label == "ring":
                shape &= radius > 0.18 * size
            image = rng.normal(90, 30, (size, size, 3)) + shape[..., None] * rng.uniform(20, 40)
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / label / f"{i}.png")
    return root


@pytest.mark.slow
def test_plain_ce_at_the_defaults_learns_a_small_imbalanced_folder(
    tmp_path: Path, one_thread: None
) -> None:
    # 300 images, 240 : 60: at 15 epochs of 2 batches (the defaults without the floor), 30
    # steps left a network like this predicting one class; the 500-step floor gives it 250
    # epochs. Learned means: the validation balanced accuracy of the stage-1 head is above
    # 0.75 in at least 80 % of the epochs, and the test balanced accuracy above 0.9.
    folder = _disc_or_ring_folder(tmp_path / "shapes", {"disc": 240, "ring": 60})
    results = tmp_path / "results"
    argv = ["run", "--dataset", f"imagefolder:{folder}", "--methods", "ce", "--seeds", "0"]
    argv += ["--results-dir", str(results), "--device", "cpu", "--no-progress", "--no-report"]
    assert main(argv) == 0
    (record_file,) = results.glob("*/runs/*/run.json")
    record = json.loads(record_file.read_text())
    schedule = record["stage1"]["schedule"]
    assert schedule["total_steps"] >= 500 and schedule["stretched"]
    assert record["kept_epoch"] == schedule["epochs"] == len(record["history"])
    # Under the default rule only the last epoch is validated (nothing reads the others).
    assert [HEAD_SCORE in epoch for epoch in record["history"]][-2:] == [False, True]
    assert record["history"][-1][HEAD_SCORE] > 0.75
    metrics = json.loads((record_file.parent / "metrics.json").read_text())
    assert metrics["test"]["balanced_accuracy"] > 0.9
