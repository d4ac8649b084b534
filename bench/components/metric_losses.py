"""Metric-learning losses added to cross-entropy in stage 1, on L2-normalised embeddings.

Supervised contrastive, triplet (with a semi-hard miner), proxy-anchor and SimCLR's NT-Xent
come from pytorch-metric-learning; the class-centre triplet and the centre loss are ours. Every
builder takes the training class counts and the embedding size (as the classification losses
take the counts), and returns a module called as
`loss(embeddings, labels)`, plus, as keywords, the inputs its catalogue entry declares
(`MetricLossInfo.inputs`); modules with parameters (proxies, learned centres) are trained with
the network.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses, miners
from torch import nn


class MinedTripletLoss(nn.Module):
    """Triplet margin loss over the triplets a semi-hard miner picks from the batch."""

    def __init__(self, margin: float) -> None:
        super().__init__()
        self.miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")
        self.loss = losses.TripletMarginLoss(margin=margin)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(embeddings, labels, self.miner(embeddings, labels))


class SelfSupervisedContrast(nn.Module):
    """NT-Xent, SimCLR's loss (Chen et al., ICML 2020): each view's positive is another view of
    the same image, its negatives every view of the other images of the batch,
    −log(exp(s⁺/τ) / (exp(s⁺/τ) + Σ exp(s⁻/τ))) on cosine similarities, averaged over the
    positive pairs (with two views, SimCLR's mean over the 2N views). Labels play no part:
    `instances` says which image each row is a view of."""

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.loss = losses.NTXentLoss(temperature=temperature)

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, *, instances: torch.Tensor
    ) -> torch.Tensor:
        return self.loss(embeddings, instances)


class ClassCentreTripletLoss(nn.Module):
    """Anchor pulled to its class centre, pushed from the nearest other centre by a margin.

    loss = mean over the batch of max(0, ‖e − c_y‖ − min_{k≠y} ‖e − c_k‖ + margin), on unit
    embeddings. Centres are `running` means of the (normalised) class embeddings, updated with
    `momentum` after each training batch, or `learned` proxies trained with the network.
    """

    def __init__(
        self, num_classes: int, dim: int, margin: float, centres: str, momentum: float
    ) -> None:
        super().__init__()
        initial = F.normalize(torch.randn(num_classes, dim), dim=1)
        self.learned = centres == "learned"
        if self.learned:
            self.centres = nn.Parameter(initial)
        else:
            self.register_buffer("centres", initial)
        self.margin, self.momentum = margin, momentum

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # Running centres are updated in place below: compute with a copy.
        centres = F.normalize(self.centres, dim=1) if self.learned else self.centres.clone()
        distances = torch.cdist(embeddings, centres.to(embeddings.dtype))
        own = distances.gather(1, labels[:, None])[:, 0]
        others = distances.masked_fill(F.one_hot(labels, len(centres)).bool(), float("inf"))
        loss = F.relu(own - others.min(dim=1).values + self.margin).mean()
        if self.training and not self.learned:
            self._update_running_centres(embeddings.detach(), labels)
        return loss

    @torch.no_grad()
    def _update_running_centres(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        for label in labels.unique():
            mean = embeddings[labels == label].mean(0)
            blended = self.momentum * self.centres[label] + (1 - self.momentum) * mean
            self.centres[label] = F.normalize(blended, dim=0)


class CentreLoss(nn.Module):
    """Centre loss ½‖e − c_y‖² (Wen et al., ECCV 2016), averaged over the batch.

    Centres follow the paper's update, not gradients: c_j ← c_j − α·Δc_j with
    Δc_j = Σ_{i: y_i = j} (c_j − e_i) / (1 + n_j) over the batch, applied after each batch.
    """

    centres: torch.Tensor

    def __init__(self, num_classes: int, dim: int, alpha: float) -> None:
        super().__init__()
        self.register_buffer("centres", torch.zeros(num_classes, dim))
        self.alpha = alpha

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        centres = self.centres[labels].to(embeddings.dtype)  # indexing copies
        loss = 0.5 * ((embeddings - centres) ** 2).sum(dim=1).mean()
        if self.training:
            with torch.no_grad():
                self._update(embeddings.detach(), labels)
        return loss

    def _update(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        num_classes = len(self.centres)
        counts = torch.bincount(labels, minlength=num_classes).to(embeddings.dtype)
        summed = torch.zeros_like(self.centres).index_add_(0, labels, embeddings.float())
        delta = (counts[:, None] * self.centres - summed) / (1 + counts[:, None])
        self.centres -= self.alpha * delta


def build_supcon(counts: np.ndarray, dim: int, *, temperature: float) -> nn.Module:
    """Supervised contrastive loss (Khosla et al., NeurIPS 2020)."""
    return losses.SupConLoss(temperature=temperature)


def build_triplet(counts: np.ndarray, dim: int, *, margin: float) -> nn.Module:
    """Triplet loss on mined triplets (`MinedTripletLoss`)."""
    return MinedTripletLoss(margin)


def build_proxy_anchor(counts: np.ndarray, dim: int, *, margin: float, alpha: float) -> nn.Module:
    """Proxy-anchor loss (Kim et al., CVPR 2020)."""
    return losses.ProxyAnchorLoss(len(counts), dim, margin=margin, alpha=alpha)


def build_centre_triplet(
    counts: np.ndarray, dim: int, *, margin: float, centres: str, momentum: float
) -> nn.Module:
    """Class-centre triplet loss (`ClassCentreTripletLoss`)."""
    return ClassCentreTripletLoss(len(counts), dim, margin, centres, momentum)


def build_centre(counts: np.ndarray, dim: int, *, alpha: float) -> nn.Module:
    """Centre loss (Wen et al., ECCV 2016)."""
    return CentreLoss(len(counts), dim, alpha)


def build_nt_xent(counts: np.ndarray, dim: int, *, temperature: float) -> nn.Module:
    """SimCLR's label-free NT-Xent loss (`SelfSupervisedContrast`)."""
    return SelfSupervisedContrast(temperature)
