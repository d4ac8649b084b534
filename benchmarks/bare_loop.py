"""The harness's stage-1 training against a bare PyTorch loop doing the same work.

The bare loop is what one would write by hand: the same model, the same uint8 images (on the
device when it is a GPU), the same batched augmentation and normalisation, Nesterov SGD with
the same warm-up and cosine schedule, cross-entropy, bfloat16 autocast on CUDA, and a pass
over the validation split after the last epoch (as the harness under its default rule, `last`,
which reads no earlier epoch's score). What it lacks is everything the harness adds
around it: samplers, objectives, metric losses, divergence checks, history, checkpoint choice.
Both run back to back in one process; the ratio of their images per second is the harness's
efficiency (1.0: no cost).
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.components.catalogue import LOSSES, SAMPLERS
from bench.components.models import build_classifier
from bench.components.settings import TrainingSettings
from bench.stage1.augment import Augment, Normalizer
from bench.stage1.schedule import lr_at
from bench.stage1.training import Objective, Training, autocast, eval_batch_size, train_stage1


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(
    model: torch.nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: torch.Tensor,
    settings: TrainingSettings,
    device: torch.device,
) -> float:
    """Seconds to train `model` by hand for `settings.epochs`, then scoring `val`."""
    images, labels = train
    _sync(device)
    started = time.perf_counter()  # from the same point as the harness: statistics, upload
    normalizer, augment = Normalizer.fit(images).to(device), Augment()
    if device.type == "cuda":
        images, labels = images.to(device), labels.to(device)
        torch.backends.cudnn.benchmark = True
    generator = torch.Generator().manual_seed(0)
    model.to(device)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        nesterov=True,
        weight_decay=settings.weight_decay,
    )
    steps = len(labels) // settings.batch_size
    total, warmup = steps * settings.epochs, steps * settings.warmup_epochs
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(len(labels), generator=generator).to(images.device)
        for step in range(steps):
            index = order[step * settings.batch_size : (step + 1) * settings.batch_size]
            batch = augment(images[index].to(device), generator)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch * steps + step, total, warmup, settings.lr)
            with autocast(device):
                logits = model(normalizer(batch))
            loss = F.cross_entropy(logits.float(), labels[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        for chunk in val.split(eval_batch_size(device)):
            with autocast(device):
                model(normalizer(chunk.to(device))).float().cpu()
    _sync(device)
    return time.perf_counter() - started


def harness(
    model: torch.nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    settings: TrainingSettings,
    device: torch.device,
    every_epoch: bool = False,
) -> float:
    """Seconds of the harness's `train_stage1` (cross-entropy, uniform sampling) on the same;
    with `every_epoch`, validated after every epoch (a watcher, as a sweep's pruner), else
    after the last only (the default rule)."""
    counts = np.bincount(train[1].numpy(), minlength=int(train[1].max()) + 1)
    objective = Objective(LOSSES["ce"](counts), SAMPLERS["instance"])
    watch = (lambda epoch, score: None) if every_epoch else None
    _sync(device)
    started = time.perf_counter()
    train_stage1(
        Training(model, train, val, objective, settings, device, progress=False, on_epoch=watch)
    )
    _sync(device)
    return time.perf_counter() - started


@dataclass(frozen=True)
class Comparison:
    """Median seconds of each over the repeats, and the harness's share of the bare loop's
    images per second."""

    bare_s: float
    harness_s: float
    images_per_s: float

    @property
    def ratio(self) -> float:
        """Harness images/s ÷ bare-loop images/s."""
        return self.bare_s / self.harness_s


def compare(
    backbone: str,
    image_size: int,
    n_train: int,
    settings: TrainingSettings,
    device: torch.device,
    repeats: int = 3,
) -> Comparison:
    """Both loops on `n_train` random images (and half as many for validation) at
    `image_size`, alternating, `repeats` times each; medians."""
    generator = torch.Generator().manual_seed(0)
    size = (n_train + n_train // 2, 3, image_size, image_size)
    images = torch.randint(0, 256, size, dtype=torch.uint8, generator=generator)
    labels = torch.arange(len(images)) % 7
    train = (images[:n_train], labels[:n_train])
    val = (images[n_train:], labels[n_train:])
    template = build_classifier(backbone, 7)
    bare, ours = [], []
    for _ in range(repeats):
        bare.append(bare_loop(copy.deepcopy(template), train, val[0], settings, device))
        ours.append(harness(copy.deepcopy(template), train, val, settings, device))
    bare_s, harness_s = statistics.median(bare), statistics.median(ours)
    return Comparison(bare_s, harness_s, n_train * settings.epochs / harness_s)
