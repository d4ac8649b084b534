"""Stage-1 training: SGD with warm-up and cosine decay, batched augmentation on the device,
and checkpoint selection on validation balanced accuracy.

Built for throughput on a GPU as on the CPU: images arrive as uint8 batches already on the
device (`bench.batches`), the models are channels-last, matrix work runs in bfloat16 autocast
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

from bench.augment import Augment, Normalizer
from bench.batches import BatchSource
from bench.errors import TrainingDiverged
from bench.losses import Loss
from bench.metrics import balanced_accuracy
from bench.models import Classifier
from bench.settings import TrainingSettings

Sampler = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """What stage 1 minimises, and how it samples.

    The classification loss (with optional class weights switched on at an epoch) plus, when
    `metric` is set, `metric_weight` times a metric-learning loss on the model's normalised
    projection of the features. The metric loss's own parameters (proxies, learned centres)
    train at `metric_lr_multiplier` times the learning rate, with weight decay or without.
    """

    loss: Loss
    sampler: Sampler
    class_weights: np.ndarray | None = None
    weights_from_epoch: int = 0
    metric: torch.nn.Module | None = None
    metric_weight: float = 1.0
    metric_lr_multiplier: float = 1.0
    metric_weight_decay: bool = True


@dataclass
class TrainingOutcome:
    """The model with its best-on-validation weights loaded, its input normaliser, the history."""

    model: Classifier
    normalizer: Normalizer
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    compiled: str = ""  # with --compile: `compiled`, or why not


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up to `base_lr`, then cosine decay to zero (per optimisation step)."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * base_lr * (1 + math.cos(math.pi * progress))


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


def _steps_per_epoch(n: int, batch_size: int) -> int:
    # A trailing batch of one image would break batch norm, so it is dropped.
    return n // batch_size + (1 if n % batch_size > 1 else 0)


def train_stage1(
    model: Classifier,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    objective: Objective,
    settings: TrainingSettings,
    device: torch.device,
    seed: int,
    augment: Augment | None = None,
    progress: bool = True,
    on_epoch: Callable[[int, float], None] | None = None,
    compile_model: bool = False,
) -> TrainingOutcome:
    """Train `model` on `train` and keep the epoch with the best validation balanced accuracy.

    `seed` drives sampling and augmentation (the caller seeds initialisation the same way).
    A non-finite training loss or validation output stops training with `TrainingDiverged`
    (checked once per epoch, from a sum kept on the device).
    `on_epoch(epoch, val_balanced_accuracy)` is called after each epoch (a sweep reports to
    its pruner there, and may stop the training by raising). `compile_model`: train and
    evaluate through a compiled backbone (see `compiled_backbone`).
    """
    images, labels = train
    augment = augment or Augment()
    normalizer = Normalizer.fit(images)
    generator = torch.Generator().manual_seed(seed)
    model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # autotuned convolutions for the fixed shapes
    source = BatchSource.on(images, labels, device)
    on_device = normalizer.to(device)
    backbone: Callable[[torch.Tensor], torch.Tensor] = model.backbone
    if compile_model:
        backbone = CompiledBackbone(model.backbone)
    optimizer = build_optimizer(model, objective, settings)
    steps = _steps_per_epoch(len(labels), settings.batch_size)
    total, warmup = steps * settings.epochs, steps * settings.warmup_epochs
    weights = (
        None
        if objective.class_weights is None
        else torch.tensor(objective.class_weights, dtype=torch.float32, device=device)
    )
    best_score, best_epoch, best_state = -1.0, -1, copy.deepcopy(model.state_dict())
    history: list[dict[str, float]] = []
    epochs = tqdm(
        range(settings.epochs), desc="epochs", unit="ep", leave=False, disable=not progress
    )
    for epoch in epochs:
        model.train()
        epoch_weights = weights if epoch >= objective.weights_from_epoch else None
        order = objective.sampler(labels, generator)
        running = torch.zeros((), device=device)  # summed on the device: no sync per step
        for step, (uint8_batch, targets) in enumerate(
            source.batches(order, settings.batch_size, steps)
        ):
            batch = augment(uint8_batch, generator)
            lr = lr_at(epoch * steps + step, total, warmup, settings.lr)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_multiplier"]
            with autocast(device):
                features = backbone(on_device(batch))
                logits = model.head(features)
            loss = objective.loss.fn(logits.float(), targets, epoch_weights)
            if objective.metric is not None:
                embeddings = model.embed(features).float()
                loss = loss + objective.metric_weight * objective.metric(embeddings, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach()
        train_loss = float(running) / steps
        if not math.isfinite(train_loss):
            raise TrainingDiverged(
                f"stage 1 diverged in epoch {epoch + 1}: mean training loss {train_loss}"
            )
        _, val_logits = predict(model, val[0], on_device, device, backbone=backbone)
        if not bool(torch.isfinite(val_logits).all()):
            raise TrainingDiverged(
                f"stage 1 diverged in epoch {epoch + 1}: non-finite validation logits"
            )
        score = balanced_accuracy(val[1].numpy(), val_logits.argmax(1).numpy())
        history.append(
            {"epoch": epoch + 1, "train_loss": train_loss, "val_balanced_accuracy": score}
        )
        epochs.set_postfix(loss=f"{train_loss:.3f}", val_bacc=f"{score:.3f}")
        if on_epoch is not None:
            on_epoch(epoch + 1, score)
        if score > best_score:
            best_score, best_epoch = score, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    compiled = backbone.state if isinstance(backbone, CompiledBackbone) else ""
    if compiled == "compiled":
        tqdm.write("stage 1: compiled")
    return TrainingOutcome(model, normalizer, best_epoch, history, compiled)
