"""Contrastive stage-1 losses designed for long-tailed data, on L2-normalised embeddings.

None of them is in pytorch-metric-learning (its `SupConLoss` takes every same-class row as a
positive and weights classes by their batch counts, which is what these methods change), so
they are written here, vectorised over the batch, and tested against slow references that
follow each paper's formula. A batch holds the views of its images stacked view after view;
`instances` says which image each row is a view of. Built like the other metric losses
(`bench.components.metric_losses`): from the training class counts and the embedding size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def k_positive_mask(labels: torch.Tensor, instances: torch.Tensor, k: int) -> torch.Tensor:
    """KCL's positives (Kang et al., ICLR 2021): for each row, the other views of its own image
    and `k` rows drawn uniformly without replacement (from torch's seeded generator) among the
    rows of the other images of its class, all of them when the batch holds fewer than `k`."""
    n = len(labels)
    same_image = instances[:, None] == instances[None, :]
    candidates = (labels[:, None] == labels[None, :]) & ~same_image
    scores = torch.rand(n, n, device=labels.device).masked_fill(~candidates, 2.0)
    ranks = scores.argsort(dim=1).argsort(dim=1)  # each row's candidates take ranks 0, 1, …
    own_views = same_image & ~torch.eye(n, dtype=torch.bool, device=labels.device)
    return own_views | (candidates & (ranks < k))


def contrast_log_probabilities(embeddings: torch.Tensor, temperature: float) -> torch.Tensor:
    """log of exp(z_i·z_j/τ) / Σ_{a≠i} exp(z_i·z_a/τ) for every pair (−inf on the diagonal)."""
    logits = embeddings @ embeddings.T / temperature
    eye = torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    logits = logits.masked_fill(eye, float("-inf"))
    return logits - torch.logsumexp(logits, dim=1, keepdim=True)


def mean_over_positives(log_probabilities: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """−mean over each anchor's positives of its log-probability, averaged over the anchors that
    have a positive (SupCon's reduction, Khosla et al. 2020, eq. 2)."""
    counts = positives.sum(1)
    summed = log_probabilities.masked_fill(~positives, 0).sum(1)
    anchors = (counts > 0).sum().clamp(min=1)  # no positive anywhere: zero, in the graph
    return -(summed / counts.clamp(min=1)).sum() / anchors


class KPositiveContrastiveLoss(nn.Module):
    """KCL, k-positive contrastive learning (Kang et al., "Exploring Balanced Feature Spaces
    for Representation Learning", ICLR 2021): supervised contrast in which every anchor has
    the same number of positives, the other view(s) of its image and `k` images of its class
    (`k_positive_mask`), so a head class pulls no harder than a tail class; the denominator
    holds every other row of the batch."""

    def __init__(self, k: int, temperature: float) -> None:
        super().__init__()
        self.k, self.temperature = k, temperature

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, *, instances: torch.Tensor
    ) -> torch.Tensor:
        positives = k_positive_mask(labels, instances, self.k)
        return mean_over_positives(
            contrast_log_probabilities(F.normalize(embeddings, dim=1), self.temperature),
            positives,
        )


def class_averaged_log_probabilities(
    embeddings: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor, temperature: float
) -> torch.Tensor:
    """BCL's log-probabilities (Zhu et al., CVPR 2022, eq. 7): rows against every other row and
    every class prototype (class-complement: each class is present, by its prototype, even
    when the batch has none of it), each exp(z_i·z_k/τ) over a denominator that averages within
    each class before summing over classes, Σ_c (1/|S_c|) Σ_{k∈S_c} exp(z_i·z_k/τ), S_c being
    class c's other rows and its prototype, so a class counts once whatever its batch count.
    Returns rows × (rows + classes); −inf where a row meets itself."""
    rows, classes = len(embeddings), len(prototypes)
    device = embeddings.device
    targets = torch.cat([labels, torch.arange(classes, device=device)])
    logits = embeddings @ torch.cat([embeddings, prototypes]).T / temperature
    itself = torch.zeros(rows, rows + classes, dtype=torch.bool, device=device)
    itself[:, :rows] = torch.eye(rows, dtype=torch.bool, device=device)
    same = (labels[:, None] == targets[None, :]) & ~itself
    class_sizes = torch.bincount(targets, minlength=classes).to(logits.dtype)
    sizes = class_sizes[targets][None, :] - same.to(logits.dtype)  # |S_c| as row i sees it
    logits = logits.masked_fill(itself, float("-inf"))
    denominator = torch.logsumexp(logits - sizes.log(), dim=1, keepdim=True)
    return logits - denominator


class BalancedContrastiveLoss(nn.Module):
    """BCL's balanced supervised contrastive loss (Zhu et al., "Balanced Contrastive Learning
    for Long-Tailed Visual Recognition", CVPR 2022): class-averaged and class-complemented
    contrast (`class_averaged_log_probabilities`) whose positives are a row's other rows of
    its class and its class prototype, averaged as SupCon averages (the mean over its
    positives, then over the rows). The prototypes are the classifier's weights mapped into
    the embedding space by their own projection, as BCL builds them."""

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, *, prototypes: torch.Tensor
    ) -> torch.Tensor:
        embeddings, prototypes = F.normalize(embeddings, dim=1), F.normalize(prototypes, dim=1)
        log_probabilities = class_averaged_log_probabilities(
            embeddings, labels, prototypes, self.temperature
        )
        targets = torch.cat([labels, torch.arange(len(prototypes), device=labels.device)])
        positives = labels[:, None] == targets[None, :]
        positives[:, : len(labels)].fill_diagonal_(False)
        return mean_over_positives(log_probabilities, positives)


def paco_positive_weights(
    labels: torch.Tensor, classes: int, alpha: float, beta: float
) -> torch.Tensor:
    """PaCo's weights on each anchor's positives (Cui et al., ICCV 2021): β on its own
    class centre and α on each other row of its class, normalised to sum to one per anchor,
    β/(β + α·|P_i|) and α/(β + α·|P_i|). Rows × (classes + rows), centres first."""
    centre = F.one_hot(labels, classes).to(torch.float32) * beta
    same = (labels[:, None] == labels[None, :]).to(torch.float32)
    same.fill_diagonal_(0)
    weights = torch.cat([centre, alpha * same], dim=1)
    return weights / weights.sum(1, keepdim=True).clamp(min=torch.finfo(weights.dtype).tiny)


class ParametricContrastiveLoss(nn.Module):
    """PaCo, parametric contrastive learning (Cui et al., ICCV 2021): supervised contrast in
    which the classifier's class weights are learnable centres. Each anchor is contrasted with
    the C centres, at similarity logit_c + log π_c (the head's logit, balanced by the training
    prior as the authors' long-tailed code does), and with every other row at z_i·z_j/τ, those
    weighted by `gamma` in the denominator; its positives are its class's centre (weight β) and
    its class's other rows (weight α each: `paco_positive_weights`). The loss trains the head
    itself: a recipe pairs it with no other classification loss (`[loss] weight = 0`)."""

    log_prior: torch.Tensor

    def __init__(
        self, counts: np.ndarray, alpha: float, beta: float, gamma: float, temperature: float
    ) -> None:
        super().__init__()
        prior = torch.tensor(counts / counts.sum(), dtype=torch.float32)
        self.register_buffer("log_prior", prior.log())
        self.alpha, self.beta, self.gamma, self.temperature = alpha, beta, gamma, temperature

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, *, logits: torch.Tensor
    ) -> torch.Tensor:
        rows, classes = logits.shape
        embeddings = F.normalize(embeddings, dim=1)
        contrast = torch.cat(
            [logits + self.log_prior.to(logits), embeddings @ embeddings.T / self.temperature],
            dim=1,
        )
        eye = torch.eye(rows, dtype=torch.bool, device=logits.device)
        scale = torch.cat(
            [torch.ones_like(logits), torch.full_like(contrast[:, classes:], self.gamma)], dim=1
        )
        scale[:, classes:] = scale[:, classes:].masked_fill(eye, 0)  # an anchor is not its own
        log_denominator = torch.logsumexp(contrast + scale.log(), dim=1, keepdim=True)
        weights = paco_positive_weights(labels, classes, self.alpha, self.beta)
        return -(weights * (contrast - log_denominator)).sum(1).mean()


def build_kcl(counts: np.ndarray, dim: int, *, k: int, temperature: float) -> nn.Module:
    """KCL's loss (`KPositiveContrastiveLoss`)."""
    return KPositiveContrastiveLoss(k, temperature)


def build_bcl(counts: np.ndarray, dim: int, *, temperature: float) -> nn.Module:
    """BCL's contrastive loss (`BalancedContrastiveLoss`)."""
    return BalancedContrastiveLoss(temperature)


def build_paco(
    counts: np.ndarray, dim: int, *, alpha: float, beta: float, gamma: float, temperature: float
) -> nn.Module:
    """PaCo's loss (`ParametricContrastiveLoss`)."""
    return ParametricContrastiveLoss(counts, alpha, beta, gamma, temperature)
