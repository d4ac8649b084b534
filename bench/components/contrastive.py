"""Contrastive stage-1 losses designed for long-tailed data, on L2-normalised embeddings.

None of them is in pytorch-metric-learning (its `SupConLoss` takes every same-class row as a
positive and weights classes by their batch counts, which is what these methods change), so
they are written here, vectorised over the batch, and tested against slow references that
follow each paper's formula. A batch holds the views of its images stacked view after view;
`instances` says which image each row is a view of. Built like the other metric losses
(`bench.components.metric_losses`): from the class count and the embedding size.
"""

from __future__ import annotations

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


def build_kcl(num_classes: int, dim: int, *, k: int, temperature: float) -> nn.Module:
    """KCL's loss (`KPositiveContrastiveLoss`)."""
    return KPositiveContrastiveLoss(k, temperature)


def build_bcl(num_classes: int, dim: int, *, temperature: float) -> nn.Module:
    """BCL's contrastive loss (`BalancedContrastiveLoss`)."""
    return BalancedContrastiveLoss(temperature)
