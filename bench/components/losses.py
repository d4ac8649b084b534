"""Stage-1 classification losses, each a small function of (logits, targets, class weights).

Registered builders take the training class counts and the recipe's parameters and return a
`Loss`: the function plus the classifier head it expects (LDAM and GCL need a cosine head).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass(frozen=True)
class Loss:
    """A built loss and the head it needs: `linear`, or `cosine` with a logit scale."""

    fn: LossFn
    head: str = "linear"
    head_scale: float = 1.0


def weighted_mean(
    per_sample: torch.Tensor, targets: torch.Tensor, class_weights: torch.Tensor | None
) -> torch.Tensor:
    """Mean of per-sample losses, weighted by the class weight of each target if given.

    Normalised by the sum of the weights in the batch, as `F.cross_entropy(weight=...)` does.
    """
    if class_weights is None:
        return per_sample.mean()
    weights = class_weights[targets]
    return (weights * per_sample).sum() / weights.sum()


def cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Softmax cross-entropy, optionally class-weighted."""
    return F.cross_entropy(logits, targets, weight=class_weights)


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    *,
    gamma: float,
) -> torch.Tensor:
    """Softmax focal loss −(1 − p_t)^γ log p_t (Lin et al., ICCV 2017)."""
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, targets[:, None])[:, 0]
    per_sample = -((1 - log_p.exp()) ** gamma) * log_p
    return weighted_mean(per_sample, targets, class_weights)


def margin_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    *,
    margins: torch.Tensor,
) -> torch.Tensor:
    """Cross-entropy after subtracting a per-class margin from the true-class logit (LDAM)."""
    shifted = logits - F.one_hot(targets, logits.shape[1]) * margins.to(logits)[targets, None]
    return F.cross_entropy(shifted, targets, weight=class_weights)


def offset_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    *,
    offsets: torch.Tensor,
) -> torch.Tensor:
    """Cross-entropy on logits plus fixed per-class offsets (used in training only)."""
    return F.cross_entropy(logits + offsets.to(logits), targets, weight=class_weights)


def build_ce(counts: np.ndarray) -> Loss:
    """Cross-entropy."""
    return Loss(cross_entropy)


def build_focal(counts: np.ndarray, *, gamma: float) -> Loss:
    """Focal loss (Lin et al., ICCV 2017)."""
    return Loss(lambda z, y, w: focal_loss(z, y, w, gamma=gamma))


def ldam_margins(counts: np.ndarray, max_margin: float) -> torch.Tensor:
    """LDAM margins ∝ n_j^(−1/4), scaled so the rarest class gets `max_margin` (Cao et al. 2019)."""
    raw = 1.0 / np.power(counts.astype(float), 0.25)
    return torch.tensor(raw * (max_margin / raw.max()), dtype=torch.float32)


def build_ldam(counts: np.ndarray, *, max_margin: float, scale: float) -> Loss:
    """LDAM: margins ∝ n_j^(-1/4) on a cosine head (Cao et al., NeurIPS 2019)."""
    # The cosine head already multiplies by `scale`, so the margin is scaled alike.
    margins = ldam_margins(counts, max_margin) * scale
    return Loss(
        lambda z, y, w: margin_cross_entropy(z, y, w, margins=margins),
        head="cosine",
        head_scale=scale,
    )


def log_prior(counts: np.ndarray) -> torch.Tensor:
    """log π_j, the log of each class's share of the training set."""
    counts = counts.astype(float)
    return torch.tensor(np.log(counts / counts.sum()), dtype=torch.float32)


def build_balanced_softmax(counts: np.ndarray) -> Loss:
    """Balanced softmax: logits offset by the log prior (Ren et al., NeurIPS 2020)."""
    offsets = log_prior(counts)
    return Loss(lambda z, y, w: offset_cross_entropy(z, y, w, offsets=offsets))


def build_logit_adjusted(counts: np.ndarray, *, tau: float) -> Loss:
    """Logit-adjusted loss: offsets τ·log π_j (Menon et al., ICLR 2021)."""
    offsets = tau * log_prior(counts)
    return Loss(lambda z, y, w: offset_cross_entropy(z, y, w, offsets=offsets))


def vs_scales(counts: np.ndarray, gamma: float) -> torch.Tensor:
    """VS loss's multiplicative logit scales Δ_j = (n_j / n_max)^γ: 1 for the most frequent class,
    smaller for rarer ones (Kini et al., NeurIPS 2021)."""
    counts = counts.astype(float)
    return torch.tensor(np.power(counts / counts.max(), gamma), dtype=torch.float32)


def build_vs(counts: np.ndarray, *, gamma: float, tau: float) -> Loss:
    """Vector-scaling loss: cross-entropy on Δ_j·z_j + τ·log π_j, in training only (Kini et al.,
    NeurIPS 2021); γ = 0 is the logit-adjusted loss."""
    scales, offsets = vs_scales(counts, gamma), tau * log_prior(counts)
    return Loss(lambda z, y, w: offset_cross_entropy(z * scales.to(z), y, w, offsets=offsets))


def lade_regulariser(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    log_train_prior: torch.Tensor,
    remine_lambda: float,
) -> torch.Tensor:
    """LADE's regulariser (Hong et al., CVPR 2021): minus the π_y-weighted sum over classes y of
    the Donsker–Varadhan estimate of KL(p_t(x|y) ‖ p_t(x)) with the logit z_y as its critic,
    E_{x|y}[z_y] − log E_x[e^{z_y} p_t(y)/p_s(y)], less ReMINE's λ·(log E_x[…])², the target
    prior p_t uniform and p_s the training prior (`log_train_prior`: log p_s).

    Expectations are batch means; a class absent from the batch has its first term 0, as in the
    authors' code.
    """
    num_samples, num_classes = logits.shape
    members = F.one_hot(targets, num_classes).to(logits)
    log_ps = log_train_prior.to(logits)
    class_mean = (logits * members).sum(0) / members.sum(0).clamp(min=1)
    shifted = logits - log_ps - math.log(num_classes)
    log_partition = torch.logsumexp(shifted, dim=0) - math.log(num_samples)
    estimate = class_mean - log_partition - remine_lambda * log_partition**2
    return -(log_ps.exp() * estimate).sum()


def build_lade(counts: np.ndarray, *, alpha: float, remine_lambda: float) -> Loss:
    """LADE: cross-entropy on logits + log π_j (LADE-CE, PC softmax's prior adjustment made in
    training) plus α times the LADE regulariser, for a uniform target distribution (Hong et
    al., CVPR 2021)."""
    prior = log_prior(counts)

    def lade(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        regulariser = lade_regulariser(z, y, log_train_prior=prior, remine_lambda=remine_lambda)
        return offset_cross_entropy(z, y, w, offsets=prior) + alpha * regulariser

    return Loss(lade)


def gcl_cloud_sizes(counts: np.ndarray) -> torch.Tensor:
    """GCL's relative cloud sizes (log n_max − log n_j) / (log n_max − log n_min): 0 for the most
    frequent class, 1 for the rarest, all 0 when every class has as many images."""
    rarity = np.log(counts.max()) - np.log(counts.astype(float))
    if rarity.max() > 0:
        rarity = rarity / rarity.max()
    return torch.tensor(rarity, dtype=torch.float32)


def gcl_draws(like: torch.Tensor) -> torch.Tensor:
    """|ε| per logit, ε ~ N(0, 1/3²) clipped to [−1, 1] (GCL), from torch's global generator,
    which stage 1 seeds with the train seed."""
    return (torch.randn(like.shape, device=like.device) / 3).clamp(-1, 1).abs()


def clouded_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    *,
    amplitudes: torch.Tensor,
    margin: float,
    draws: torch.Tensor,
) -> torch.Tensor:
    """Cross-entropy after lowering each logit z_ij by draws_ij · amplitude_j (class j's cloud)
    and the true-class logit by `margin`."""
    lowered = logits - draws * amplitudes.to(logits)
    lowered = lowered - margin * F.one_hot(targets, logits.shape[1]).to(logits)
    return F.cross_entropy(lowered, targets, weight=class_weights)


def build_gcl(counts: np.ndarray, *, noise: float, margin: float, scale: float) -> Loss:
    """Gaussian clouded logits on a cosine head: each cosine lowered by noise · |ε| · cloud size
    of its class, the true class's by `margin`, fresh ε every step, in training only (Li et al.,
    CVPR 2022)."""
    # The cosine head already multiplies by `scale`, so clouds and margin are scaled alike.
    amplitudes = scale * noise * gcl_cloud_sizes(counts)

    def gcl(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        draws = gcl_draws(z)
        return clouded_cross_entropy(
            z, y, w, amplitudes=amplitudes, margin=scale * margin, draws=draws
        )

    return Loss(gcl, head="cosine", head_scale=scale)
