"""Stage 2: re-balancing the classifier on top of a frozen stage-1 network.

cRT re-trains a fresh linear head and LWS learns one positive scale per class on the stage-1
head, both with class-balanced sampling (Kang et al., ICLR 2020), for 10 epochs but at least
2000 optimisation steps (about what cRT takes on ImageNet-LT: 10 epochs of 116k images at batch
512), keeping the last step. DisAlign calibrates the frozen head's logits under generalised
re-weighting (Zhang et al., CVPR 2021), weight balancing fine-tunes the stage-1 head under
MaxNorm with a class-balanced loss (Alshammari et al., CVPR 2022) and MiSLAS re-trains cRT's
head with label-aware smoothing (Zhong et al., CVPR 2021), on the same schedule.
τ-normalisation rescales the head's class weights by ‖w_j‖^−τ and post-hoc logit adjustment
subtracts τ·log π_j (Menon et al., ICLR 2021), each τ picked on validation over 0..2 in steps
of 0.1. Nearest class mean scores cosine similarity to the train-set class means
of normalised features. The test split never informs any choice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.components.class_means import class_mean_logits, class_means
from bench.components.losses import log_prior
from bench.components.metrics import balanced_accuracy
from bench.components.models import head_logits
from bench.components.samplers import class_balanced_order, instance_order
from bench.components.weighting import effective_number
from bench.core.errors import TrainingDiverged
from bench.stage1.schedule import lr_at
from bench.stage2.feature_sources import FeatureSource

TAU_GRID = tuple(round(0.1 * k, 1) for k in range(21))
TAIL = 0.05  # share of a head fit's last steps whose mean loss is recorded

HeadLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, labels) -> loss
RowOrder = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # labels -> row indices


@dataclass(frozen=True)
class HeadWeights:
    """The stage-1 classification head: weight (C×D), bias, and its kind and logit scale."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    kind: str = "linear"
    scale: float = 1.0

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """The head applied to features, as in stage 1."""
        return head_logits(self.kind, features, self.weight, self.bias, self.scale)

    def to(self, device: torch.device) -> HeadWeights:
        """The same head with its tensors on `device`."""
        bias = None if self.bias is None else self.bias.to(device)
        return HeadWeights(self.weight.to(device), bias, self.kind, self.scale)


@dataclass(frozen=True)
class Stage2Context:
    """Everything a stage-2 method may use: features, labels of each split, the stage-1 head.

    `labels["train"]` labels the un-augmented train split; the source's `train_labels` label its
    training rows (which may hold several augmented views of each image).
    """

    source: FeatureSource
    labels: dict[str, torch.Tensor]
    head: HeadWeights
    class_counts: np.ndarray
    seed: int
    device: torch.device


@dataclass
class Stage2Outcome:
    """Val and test logits after stage 2, and what was chosen on validation."""

    logits: dict[str, torch.Tensor]
    choices: dict[str, Any] = field(default_factory=dict)


def _score(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return balanced_accuracy(labels.numpy(), logits.argmax(1).numpy())


@dataclass(frozen=True)
class HeadFit:
    """How a stage-2 head was fitted (recorded in `run.json`): the steps taken, the mean
    training loss over the last `TAIL` of them, and the validation balanced accuracy of the
    fitted head (reported, not used to choose anything)."""

    steps: int
    final_train_loss: float
    val_balanced_accuracy: float

    def as_dict(self) -> dict[str, Any]:
        """The recorded form."""
        return dataclasses.asdict(self)


def schedule_steps(n_rows: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """Optimisation steps of a head fit: `epochs` passes over the rows, but at least
    `min_steps`, so that a small dataset still gets enough updates."""
    return max(epochs * max(1, n_rows // batch_size), min_steps, 1)


@dataclass(frozen=True)
class FitSchedule:
    """How a trained head is fit (the parameters cRT and LWS declare,
    `bench.components.catalogue.HEAD_FIT`): epochs over the training rows with a floor of
    steps, SGD's learning rate and weight decay, the batch size."""

    epochs: int
    min_steps: int
    lr: float
    batch_size: int
    weight_decay: float


def fit_head(
    head: nn.Module,
    context: Stage2Context,
    schedule: FitSchedule,
    *,
    loss: HeadLoss = F.cross_entropy,
    order: RowOrder = class_balanced_order,
    project: Callable[[], None] | None = None,
) -> HeadFit:
    """Train `head` for `schedule_steps` steps, the learning rate decaying to zero on a
    cosine, and keep the last step: the fit is convex on cached features (or nearly so) and
    runs to convergence, so no step is picked on validation.

    Batches are drawn by `order` (class-balanced by default, as cRT and LWS draw them) and
    `loss` is cross-entropy unless a method brings its own; `project`, where given, runs after
    every step (a constraint on the head's weights, as MaxNorm's projection)."""
    source, labels = context.source, context.source.train_labels
    generator = torch.Generator().manual_seed(context.seed)
    lr, batch_size = schedule.lr, schedule.batch_size
    optimizer = torch.optim.SGD(
        head.parameters(), lr=lr, momentum=0.9, weight_decay=schedule.weight_decay
    )
    total = schedule_steps(len(labels), batch_size, schedule.epochs, schedule.min_steps)
    rows = torch.empty(0, dtype=torch.long)
    tail, summed = [], torch.zeros((), device=context.device)
    for step in range(total):
        if len(rows) < batch_size:  # a fresh draw when the last one runs out
            rows = torch.cat([rows, order(labels, generator)])
        index, rows = rows[:batch_size], rows[batch_size:]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, total, 0, lr)
        features = source.train_batch(index).to(context.device)
        value = loss(head(features), labels[index].to(context.device))
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        if project is not None:
            project()
        summed += value.detach()
        if step >= min(total - 1, int(total * (1 - TAIL))):
            tail.append(value.detach())
    if not math.isfinite(float(summed)):
        raise TrainingDiverged(f"stage 2 diverged: a training loss over {total} steps was {summed}")
    with torch.no_grad():
        score = _score(head(source.split("val").to(context.device)).cpu(), context.labels["val"])
    return HeadFit(total, round(float(torch.stack(tail).mean()), 6), score)


def _evaluate(
    head: Callable[[torch.Tensor], torch.Tensor], context: Stage2Context
) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {
            name: head(context.source.split(name).to(context.device)).float().cpu()
            for name in ("val", "test")
        }


def crt(
    context: Stage2Context,
    *,
    epochs: int,
    min_steps: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
) -> Stage2Outcome:
    """Classifier re-training: a re-initialised linear head on class-balanced batches."""
    head, fit = _retrain(context, FitSchedule(epochs, min_steps, lr, batch_size, weight_decay))
    return Stage2Outcome(_evaluate(head, context), fit.as_dict())


def _retrain(
    context: Stage2Context, schedule: FitSchedule, loss: HeadLoss = F.cross_entropy
) -> tuple[nn.Linear, HeadFit]:
    """cRT's head: a re-initialised linear head fit on class-balanced batches."""
    torch.manual_seed(context.seed)
    in_features = context.head.weight.shape[1]
    head = nn.Linear(in_features, len(context.class_counts)).to(context.device)
    return head, fit_head(head, context, schedule, loss=loss)


class ScaledHead(nn.Module):
    """The frozen stage-1 head with a positive scale per class (LWS), s_j = exp(v_j).

    Parametrised in log space so a scale can never reach zero or turn a class's logit
    around; weight decay on v_j pulls each scale towards 1, the stage-1 head.
    """

    def __init__(self, frozen: HeadWeights, device: torch.device) -> None:
        super().__init__()
        self.frozen = frozen.to(device)
        self.log_scales = nn.Parameter(torch.zeros(len(frozen.weight), device=device))

    @property
    def scales(self) -> torch.Tensor:
        """The per-class scales s_j."""
        return self.log_scales.exp()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.frozen.logits(features)
        if self.frozen.bias is not None:  # scale w_j·x, keep the bias as learned in stage 1
            return self.scales * (logits - self.frozen.bias) + self.frozen.bias
        return self.scales * logits


def lws(
    context: Stage2Context,
    *,
    epochs: int,
    min_steps: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
) -> Stage2Outcome:
    """Learnable weight scaling: per-class scales on the frozen head, class-balanced batches."""
    head = ScaledHead(context.head, context.device)
    fit = fit_head(head, context, FitSchedule(epochs, min_steps, lr, batch_size, weight_decay))
    scales = [round(s, 6) for s in head.scales.detach().cpu().tolist()]
    return Stage2Outcome(_evaluate(head, context), {**fit.as_dict(), "scales": scales})


class AlignedHead(nn.Module):
    """The frozen stage-1 head under DisAlign's adaptive calibration (Zhang et al., CVPR 2021).

    With z the head's logits, the calibrated score of class j is
    σ(x)·(α_j z_j + β_j) + (1 − σ(x))·z_j: a per-class magnitude α_j and margin β_j, blended in
    by a confidence σ(x), the sigmoid of a linear function of the features. α_j = 1 + a_j, and
    a and β start at zero, so the calibration starts as the identity whatever σ, and weight
    decay pulls it back towards the stage-1 head.
    """

    def __init__(self, frozen: HeadWeights, device: torch.device) -> None:
        super().__init__()
        self.frozen = frozen.to(device)
        classes, dim = frozen.weight.shape
        self.magnitude = nn.Parameter(torch.zeros(classes, device=device))  # a_j = α_j − 1
        self.margin = nn.Parameter(torch.zeros(classes, device=device))  # β_j
        self.confidence = nn.Linear(dim, 1).to(device)
        nn.init.constant_(self.confidence.weight, 0.1)  # as the authors' code starts it

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.frozen.logits(features)
        confidence = torch.sigmoid(self.confidence(features))
        return logits + confidence * (self.magnitude * logits + self.margin)


def generalised_reweighting(counts: np.ndarray, rho: float) -> torch.Tensor:
    """DisAlign's class weights w_j ∝ (1/r_j)^ρ, r_j = n_j / Σ n the class's share of the
    training set, normalised to sum to the number of classes (ρ = 0: no re-weighting)."""
    raw = np.power(counts.astype(float) / counts.sum(), -rho)
    return torch.tensor(raw * (len(raw) / raw.sum()), dtype=torch.float32)


def _weighted_cross_entropy(weights: torch.Tensor) -> HeadLoss:
    """Cross-entropy weighted by the class weight of each label (a weighted mean)."""
    return lambda logits, labels: F.cross_entropy(logits, labels, weight=weights)


def _rounded(values: torch.Tensor) -> list[float]:
    return [round(v, 6) for v in values.detach().cpu().tolist()]


def disalign(
    context: Stage2Context,
    *,
    rho: float,
    epochs: int,
    min_steps: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
) -> Stage2Outcome:
    """DisAlign: the stage-1 head's adaptive calibration (`AlignedHead`) fit with the
    generalised re-weighting loss on instance-sampled batches: the weights, not the sampler,
    re-balance (Zhang et al., CVPR 2021)."""
    torch.manual_seed(context.seed)
    head = AlignedHead(context.head, context.device)
    weights = generalised_reweighting(context.class_counts, rho).to(context.device)
    schedule = FitSchedule(epochs, min_steps, lr, batch_size, weight_decay)
    fit = fit_head(
        head, context, schedule, loss=_weighted_cross_entropy(weights), order=instance_order
    )
    return Stage2Outcome(
        _evaluate(head, context),
        {
            **fit.as_dict(),
            "class_weights": _rounded(weights),
            "magnitudes": _rounded(1 + head.magnitude),
            "margins": _rounded(head.margin),
        },
    )


class FineTunedHead(nn.Module):
    """A trainable copy of the stage-1 head, of the same kind (linear or cosine)."""

    def __init__(self, stage1: HeadWeights, device: torch.device) -> None:
        super().__init__()
        self.weight = nn.Parameter(stage1.weight.detach().clone())
        self.bias = None if stage1.bias is None else nn.Parameter(stage1.bias.detach().clone())
        self.kind, self.scale = stage1.kind, stage1.scale
        self.to(device)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return head_logits(self.kind, features, self.weight, self.bias, self.scale)


def max_norm_radius(weight: torch.Tensor, threshold: float) -> float:
    """The MaxNorm radius as the authors' code sets it from the stage-1 head: `threshold` of
    the way from the shortest class weight vector to the longest."""
    norms = weight.norm(dim=1)
    return float(norms.min() + threshold * (norms.max() - norms.min()))


@torch.no_grad()
def project_max_norm(weight: torch.Tensor, radius: float) -> None:
    """MaxNorm's projection, in place: every class weight vector (row) longer than `radius`
    scaled back onto the ball of that radius; shorter ones are left alone."""
    norms = weight.norm(dim=1, keepdim=True)
    weight.mul_(torch.where(norms > radius, radius / norms, torch.ones_like(norms)))


def weight_balancing(
    context: Stage2Context,
    *,
    threshold: float,
    beta: float,
    epochs: int,
    min_steps: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
) -> Stage2Outcome:
    """Weight balancing's stage 2 (Alshammari et al., CVPR 2022): the stage-1 head fine-tuned
    with a class-balanced loss (effective-number weights, Cui et al. 2019) on instance-sampled
    batches, under weight decay and MaxNorm: after every step each class's weight vector is
    projected into the ball of radius `max_norm_radius(threshold)` (projected gradient
    descent); the bias is not constrained, as in the authors' code."""
    head = FineTunedHead(context.head, context.device)
    radius = max_norm_radius(head.weight.detach(), threshold)
    weights = torch.tensor(
        effective_number(context.class_counts, beta=beta), dtype=torch.float32
    ).to(context.device)
    schedule = FitSchedule(epochs, min_steps, lr, batch_size, weight_decay)
    fit = fit_head(
        head,
        context,
        schedule,
        loss=_weighted_cross_entropy(weights),
        order=instance_order,
        project=lambda: project_max_norm(head.weight, radius),
    )
    return Stage2Outcome(
        _evaluate(head, context),
        {
            **fit.as_dict(),
            "class_weights": _rounded(weights),
            "max_norm": round(radius, 6),
            "weight_norms": _rounded(head.weight.norm(dim=1)),
        },
    )


SMOOTHING_SHAPES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "concave": lambda position: np.sin(np.pi / 2 * position),
    "linear": lambda position: position,
    "convex": lambda position: 1 - np.cos(np.pi / 2 * position),
}


def label_smoothing_factors(
    counts: np.ndarray, smooth_head: float, smooth_tail: float, shape: str
) -> torch.Tensor:
    """MiSLAS's smoothing ε_j of each class (Zhong et al., CVPR 2021): ε_K = `smooth_tail` for
    the rarest class up to ε_1 = `smooth_head` for the most frequent, by a concave, linear or
    convex function (`SMOOTHING_SHAPES`) of the class's place (n_j − n_K) / (n_1 − n_K)
    between them. Where every class has as many images, each is the most frequent: ε_1."""
    counts = counts.astype(float)
    spread = counts.max() - counts.min()
    position = (counts - counts.min()) / spread if spread else np.ones_like(counts)
    factors = smooth_tail + (smooth_head - smooth_tail) * SMOOTHING_SHAPES[shape](position)
    return torch.tensor(factors, dtype=torch.float32)


def smoothed_targets(
    labels: torch.Tensor, smoothing: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Label-aware smoothed target distributions: 1 − ε_y on the label y, ε_y / (K − 1) on
    each other class, as the MiSLAS paper defines them."""
    epsilon = smoothing[labels].unsqueeze(1)
    one_hot = F.one_hot(labels, num_classes).to(smoothing.dtype)
    return one_hot * (1 - epsilon) + (1 - one_hot) * epsilon / (num_classes - 1)


def label_aware_loss(smoothing: torch.Tensor) -> HeadLoss:
    """Cross-entropy against `smoothed_targets` (plain cross-entropy where every ε is 0)."""
    return lambda logits, labels: F.cross_entropy(
        logits, smoothed_targets(labels, smoothing, logits.shape[1])
    )


def label_aware_smoothing(
    context: Stage2Context,
    *,
    smooth_head: float,
    smooth_tail: float,
    shape: str,
    epochs: int,
    min_steps: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
) -> Stage2Outcome:
    """MiSLAS's stage 2 (Zhong et al., CVPR 2021): cRT's re-initialised linear head on
    class-balanced batches, fit with label-aware smoothing, ε larger for frequent classes,
    whose predictions are the most over-confident. Its shifted batch normalisation is the
    `finetune-bn` feature source, which its recipe names."""
    smoothing = label_smoothing_factors(context.class_counts, smooth_head, smooth_tail, shape)
    schedule = FitSchedule(epochs, min_steps, lr, batch_size, weight_decay)
    head, fit = _retrain(context, schedule, label_aware_loss(smoothing.to(context.device)))
    return Stage2Outcome(
        _evaluate(head, context), {**fit.as_dict(), "smoothing": _rounded(smoothing)}
    )


def _pick_tau(
    make_logits: Callable[[float, str], torch.Tensor], context: Stage2Context
) -> Stage2Outcome:
    """Score every τ of the grid on val; the first best wins; report val/test at that τ."""
    scores = {tau: _score(make_logits(tau, "val"), context.labels["val"]) for tau in TAU_GRID}
    tau = max(scores, key=lambda t: scores[t])
    return Stage2Outcome(
        {name: make_logits(tau, name) for name in ("val", "test")},
        {"tau": tau, "val_balanced_accuracy_by_tau": scores},
    )


def tau_norm(context: Stage2Context) -> Stage2Outcome:
    """τ-normalised head: w_j / ‖w_j‖^τ, no bias (Kang et al.); τ picked on val."""
    weight = context.head.weight
    norms = weight.norm(dim=1, keepdim=True)

    def logits(tau: float, split: str) -> torch.Tensor:
        features = context.source.split(split)
        if context.head.kind == "cosine":  # already unit-norm rows: τ changes nothing
            return context.head.logits(features)
        return features @ (weight / norms.pow(tau)).T

    return _pick_tau(logits, context)


def logit_adjustment(context: Stage2Context) -> Stage2Outcome:
    """Post-hoc logit adjustment: stage-1 logits − τ·log π_j; τ picked on val."""
    prior = log_prior(context.class_counts)
    base = {name: context.head.logits(context.source.split(name)) for name in ("val", "test")}
    return _pick_tau(lambda tau, split: base[split] - tau * prior, context)


def nearest_class_mean(context: Stage2Context) -> Stage2Outcome:
    """Cosine similarity to each class's mean normalised train feature."""
    means = class_means(
        context.source.split("train"), context.labels["train"], len(context.class_counts)
    )
    return Stage2Outcome(
        {name: class_mean_logits(context.source.split(name), means) for name in ("val", "test")}
    )
