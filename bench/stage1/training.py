"""Stage-1 training: SGD with warm-up and cosine decay over at least a floor of steps
(`bench.stage1.schedule`), batched augmentation on the device (several views of each image and
mixup where a recipe asks), and the checkpoint a rule keeps (`bench.components.checkpoints`:
the last epoch by default).

Built for throughput on a GPU as on the CPU: images arrive as uint8 batches already on the
device (`bench.stage1.batches`), the models are channels-last, matrix work runs in bfloat16 autocast
on CUDA with cuDNN autotuning, the loss is summed on the device (the host reads it once per
epoch, so the step loop never waits for the GPU), evaluation runs in large batches, and
`compile_model` puts the backbone through `torch.compile` where it works.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from bench.components.checkpoints import (
    CHECKPOINT_RULES,
    NCM_SCORE,
    CheckpointKeeper,
    CheckpointRule,
)
from bench.components.class_means import class_mean_logits, class_means
from bench.components.losses import Loss
from bench.components.metrics import balanced_accuracy
from bench.components.models import Classifier
from bench.components.settings import TrainingSettings
from bench.core.errors import TrainingDiverged
from bench.stage1.augment import Augment, Augmentation, Mixup, Normalizer
from bench.stage1.batches import BatchSource
from bench.stage1.schedule import Schedule

Sampler = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """What stage 1 minimises, and how it samples.

    The classification loss (with optional class weights switched on at an epoch) plus, when
    `metric` is set, `metric_weight` times a metric-learning loss on the model's normalised
    projection of the features. The metric loss's own parameters (proxies, learned centres)
    train at `metric_lr_multiplier` times the learning rate, with weight decay or without.
    Each batch holds `views` augmented views of each sampled image (stacked view after view,
    so a loss sees every view with its label) and, when `mixup_alpha` is above 0, is mixed up.
    The metric loss gets, as keywords, the `metric_inputs` its catalogue entry declares. With
    `detached_head` the head is a linear probe on detached features: it learns to classify
    them, but no gradient of the classification loss (no label) reaches the backbone. The
    classification loss counts `loss_weight` times (0: off, for a metric loss that trains the
    head itself).
    """

    loss: Loss
    sampler: Sampler
    class_weights: np.ndarray | None = None
    weights_from_epoch: int = 0
    metric: torch.nn.Module | None = None
    metric_weight: float = 1.0
    metric_lr_multiplier: float = 1.0
    metric_weight_decay: bool = True
    views: int = 1
    mixup_alpha: float = 0.0
    metric_inputs: tuple[str, ...] = ()
    detached_head: bool = False
    loss_weight: float = 1.0


@dataclass(frozen=True)
class Checkpoint:
    """The weights a checkpoint rule kept, and their 1-based epoch."""

    epoch: int
    state_dict: dict[str, torch.Tensor]


@dataclass
class TrainingOutcome:
    """The model with the weights its settings' checkpoint rule kept, its input normaliser,
    the schedule it ran, the per-epoch history, and the checkpoint of every rule watched."""

    model: Classifier
    normalizer: Normalizer
    kept_epoch: int
    schedule: Schedule
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    compiled: str = ""  # with --compile: `compiled`, or why not


def autocast(device: torch.device) -> torch.autocast:
    """bfloat16 mixed precision on CUDA; a no-op context elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def eval_batch_size(device: torch.device) -> int:
    """Images per evaluation batch: large on a GPU with room for it (no gradients are kept;
    a ResNet-50 at 224 px needs about 10 GB for 2048 images), else 512."""
    if device.type == "cuda" and torch.cuda.mem_get_info(device)[0] > 24 * 2**30:
        return 2048
    return 512


@torch.no_grad()
def predict(
    model: Classifier,
    images: torch.Tensor,
    normalizer: Normalizer,
    device: torch.device,
    batch_size: int | None = None,
    backbone: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 features and logits (on the CPU) of uint8 `images`, in evaluation mode
    (`backbone`: a compiled form of the model's own)."""
    model.eval()
    backbone = backbone or model.backbone
    normalizer = normalizer.to(device)
    features, logits = [], []
    for chunk in images.split(batch_size or eval_batch_size(device)):
        with autocast(device):
            batch_features = backbone(normalizer(chunk.to(device, non_blocking=True)))
            logits.append(model.head(batch_features).float().cpu())
        features.append(batch_features.float().cpu())
    return torch.cat(features), torch.cat(logits)


def build_optimizer(
    model: Classifier, objective: Objective, settings: TrainingSettings
) -> torch.optim.Optimizer:
    """Nesterov SGD over the network and the metric loss's own parameters, each group with
    its learning-rate multiplier (read by the schedule) and weight decay."""
    groups: list[dict[str, Any]] = [
        {
            "params": list(model.parameters()),
            "lr_multiplier": 1.0,
            "weight_decay": settings.weight_decay,
        }
    ]
    if objective.metric is not None:
        objective.metric.to(next(model.parameters()).device).train()
        if extra := list(objective.metric.parameters()):
            groups.append(
                {
                    "params": extra,
                    "lr_multiplier": objective.metric_lr_multiplier,
                    "weight_decay": settings.weight_decay if objective.metric_weight_decay else 0,
                }
            )
    return torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum, nesterov=True)


class CompiledBackbone:
    """A model's backbone through `torch.compile`, falling back to the backbone itself at the
    first call that fails to compile (no compiler, an unsupported platform or graph; torch
    compiles lazily, for each mode and shape), saying why in one line. `state` is what
    happened: `compiled`, or `not compiled (reason)`. The fallback redoes the failed call
    eagerly, so training goes on with the same step."""

    def __init__(self, backbone: torch.nn.Module) -> None:
        self.backbone = backbone
        self.compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.state = "compiled"
        try:
            self.compiled = torch.compile(backbone)
        except Exception as error:  # torch.compile raises many kinds when it cannot work
            self._fall_back(error)

    def _fall_back(self, error: Exception) -> None:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        self.state = f"not compiled ({type(error).__name__}: {first[:160]})"
        self.compiled = None
        tqdm.write(f"stage 1: {self.state}; training goes on without torch.compile")

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(batch)
            except Exception as error:  # compiling this mode or shape failed
                self._fall_back(error)
        return self.backbone(batch)


@dataclass
class Training:
    """One stage-1 training: the model, its data and objective at its settings and seed, the
    device, and how to watch it. `seed` drives sampling and augmentation (the caller seeds
    initialisation the same way). `on_epoch(epoch, val_balanced_accuracy)` is called after
    each epoch (a sweep reports to its pruner there, and may stop the training by raising).
    `compile_model`: train and evaluate through a compiled backbone (`CompiledBackbone`).
    `also_watch`: more checkpoint rules whose kept weights are returned too (to compare rules
    on one training). `augment`: the augmentation of every view (`bench.stage1.augment`)."""

    model: Classifier
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    objective: Objective
    settings: TrainingSettings
    device: torch.device
    seed: int = 0
    augment: Augmentation = field(default_factory=Augment)
    progress: bool = True
    on_epoch: Callable[[int, float], None] | None = None
    compile_model: bool = False
    also_watch: tuple[str, ...] = ()


@dataclass
class _Loop:
    """What every epoch of a training uses, set up once."""

    source: BatchSource
    normalizer: Normalizer  # fitted to the training images (returned with the model)
    on_device: Normalizer  # the same, on the training device
    backbone: Callable[[torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    generator: torch.Generator
    class_weights: torch.Tensor | None
    mixing: np.random.Generator  # mixup's λ (drawn only when a recipe mixes)


def _set_up(training: Training) -> _Loop:
    images, labels = training.train
    device, model = training.device, training.model
    model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # autotuned convolutions for the fixed shapes
    backbone: Callable[[torch.Tensor], torch.Tensor] = model.backbone
    if training.compile_model:
        backbone = CompiledBackbone(model.backbone)
    weights = training.objective.class_weights
    normalizer = Normalizer.fit(images)
    return _Loop(
        source=BatchSource.on(images, labels, device),
        normalizer=normalizer,
        on_device=normalizer.to(device),
        backbone=backbone,
        optimizer=build_optimizer(model, training.objective, training.settings),
        schedule=Schedule.plan(len(labels), training.settings),
        generator=torch.Generator().manual_seed(training.seed),
        class_weights=None
        if weights is None
        else torch.tensor(weights, dtype=torch.float32, device=device),
        mixing=np.random.default_rng(training.seed),
    )


def _batch_loss(
    training: Training,
    loop: _Loop,
    uint8_batch: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None,
) -> torch.Tensor:
    """The objective on one batch: its views augmented and stacked (labels repeated alike),
    mixed up where the objective asks, then the classification loss and the metric term."""
    model, objective = training.model, training.objective
    views = [training.augment(uint8_batch, loop.generator) for _ in range(objective.views)]
    batch = views[0] if objective.views == 1 else torch.cat(views)
    targets = targets.repeat(objective.views)
    mixup = None
    if objective.mixup_alpha > 0:  # at 0 nothing is drawn: plain training, to the bit
        mixup = Mixup.draw(objective.mixup_alpha, len(batch), loop.mixing, loop.generator)
        batch = mixup.images(batch)
    with autocast(training.device):
        features = loop.backbone(loop.on_device(batch))
        logits = model.head(features.detach() if objective.detached_head else features)
    loss = _classification_loss(objective, logits.float(), targets, weights, mixup)
    if objective.metric is not None:
        embeddings = model.embed(features).float()
        inputs = _metric_inputs(training, len(uint8_batch), logits)
        loss = loss + objective.metric_weight * objective.metric(embeddings, targets, **inputs)
    return loss


def _classification_loss(
    objective: Objective,
    logits: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None,
    mixup: Mixup | None,
) -> torch.Tensor:
    """The classification loss (blended by mixup if any) times its weight; at weight 0 it is
    not computed."""
    if not objective.loss_weight:
        return logits.new_zeros(())
    if mixup is None:
        loss = objective.loss.fn(logits, targets, weights)
    else:
        loss = mixup.loss(objective.loss.fn, logits, targets, weights)
    return loss if objective.loss_weight == 1 else objective.loss_weight * loss


def _metric_inputs(
    training: Training, images: int, logits: torch.Tensor
) -> dict[str, torch.Tensor]:
    """What the metric loss takes beside embeddings and labels (`Objective.metric_inputs`):
    `instances`, the image of the batch each row is a view of; `prototypes`, the model's class
    prototypes; `logits`, the head's."""
    objective = training.objective
    available: dict[str, Callable[[], torch.Tensor]] = {
        "instances": lambda: torch.arange(images, device=logits.device).repeat(objective.views),
        "prototypes": lambda: training.model.prototypes().float(),
        "logits": lambda: logits.float(),
    }
    return {name: available[name]() for name in objective.metric_inputs}


def _train_epoch(training: Training, loop: _Loop, epoch: int) -> float:
    """One epoch of optimiser steps; the mean training loss (summed on the device: no sync
    per step)."""
    model, objective, settings = training.model, training.objective, training.settings
    model.train()
    weights = loop.class_weights if epoch >= objective.weights_from_epoch else None
    order = objective.sampler(training.train[1], loop.generator)
    steps = loop.schedule.steps_per_epoch
    running = torch.zeros((), device=training.device)
    for step, (uint8_batch, targets) in enumerate(
        loop.source.batches(order, settings.batch_size, steps)
    ):
        lr = loop.schedule.lr(epoch * steps + step, settings.lr)
        for group in loop.optimizer.param_groups:
            group["lr"] = lr * group["lr_multiplier"]
        loss = _batch_loss(training, loop, uint8_batch, targets, weights)
        loop.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loop.optimizer.step()
        running += loss.detach()
    train_loss = float(running) / steps
    if not math.isfinite(train_loss):
        raise TrainingDiverged(
            f"stage 1 diverged in epoch {epoch + 1}: mean training loss {train_loss}"
        )
    return train_loss


def train_stage1(training: Training) -> TrainingOutcome:
    """Train over `Schedule.plan` and load the epoch that the settings' checkpoint rule keeps.

    The history holds each epoch's training loss, and its validation scores where a watched
    rule reads them or `on_epoch` is set (the last epoch's always). A non-finite training loss
    (checked once per epoch, from a sum kept on the device) or validation output stops
    training with `TrainingDiverged`.
    """
    model, settings = training.model, training.settings
    loop = _set_up(training)
    rules = {name: CHECKPOINT_RULES[name] for name in (settings.checkpoint, *training.also_watch)}
    keeper = CheckpointKeeper(rules, loop.schedule.epochs)
    saved: dict[str, Checkpoint] = {}
    history: list[dict[str, float]] = []
    epochs = tqdm(
        range(loop.schedule.epochs),
        desc="epochs",
        unit="ep",
        leave=False,
        disable=not training.progress,
    )
    # Validation of every epoch only where something reads it: a rule's merit or a sweep's
    # pruner. Evaluation changes no weight and draws no random number, so the training is
    # the same to the bit either way; the last epoch is always validated.
    watching = training.on_epoch is not None or any(r.reads_scores for r in rules.values())
    for epoch in epochs:
        final = epoch + 1 == loop.schedule.epochs
        record = {"epoch": epoch + 1, "train_loss": _train_epoch(training, loop, epoch)}
        postfix = {"loss": f"{record['train_loss']:.3f}"}
        if watching or final:
            record.update(_validation_scores(training, loop, rules, epoch + 1))
            postfix["val_bacc"] = f"{record['val_balanced_accuracy']:.3f}"
        history.append(record)
        epochs.set_postfix(postfix)
        if training.on_epoch is not None:
            training.on_epoch(epoch + 1, record["val_balanced_accuracy"])
        keeping = [name for name in keeper.observe(history) if rules[name].copies_weights or final]
        if keeping:  # the final weights are the model's own, unless other rules reload it
            shared = final and not training.also_watch
            state = model.state_dict() if shared else copy.deepcopy(model.state_dict())
            saved.update({name: Checkpoint(epoch + 1, state) for name in keeping})
    model.load_state_dict(saved[settings.checkpoint].state_dict)
    compiled = loop.backbone.state if isinstance(loop.backbone, CompiledBackbone) else ""
    if compiled == "compiled":
        tqdm.write("stage 1: compiled")
    kept = saved[settings.checkpoint].epoch
    return TrainingOutcome(model, loop.normalizer, kept, loop.schedule, history, saved, compiled)


def _validation_scores(
    training: Training, loop: _Loop, rules: dict[str, CheckpointRule], epoch: int
) -> dict[str, float]:
    """The stage-1 head's validation balanced accuracy and, when a rule needs it, that of the
    nearest class mean of the training features; non-finite validation logits raise."""
    model, device, backbone = training.model, training.device, loop.backbone
    (train_images, train_labels), (val_images, val_labels) = training.train, training.val
    normalizer = loop.on_device
    val_features, val_logits = predict(model, val_images, normalizer, device, backbone=backbone)
    if not bool(torch.isfinite(val_logits).all()):
        raise TrainingDiverged(f"stage 1 diverged in epoch {epoch}: non-finite validation logits")
    scores = {
        "val_balanced_accuracy": balanced_accuracy(val_labels.numpy(), val_logits.argmax(1).numpy())
    }
    if any(rule.needs_ncm for rule in rules.values()):
        train_features, _ = predict(model, train_images, normalizer, device, backbone=backbone)
        means = class_means(train_features, train_labels, val_logits.shape[1])
        predicted = class_mean_logits(val_features, means).argmax(1)
        scores[NCM_SCORE] = balanced_accuracy(val_labels.numpy(), predicted.numpy())
    return scores
