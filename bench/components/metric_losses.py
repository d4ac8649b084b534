"""Metric-learning losses added to cross-entropy in stage 1, on L2-normalised embeddings.

Supervised contrastive, triplet (with a semi-hard miner) and proxy-anchor come from
pytorch-metric-learning; the class-centre triplet and the centre loss are ours. Every builder
takes the class count and the embedding size, and returns a module called as
`loss(embeddings, labels)`; modules with parameters (proxies, learned centres) are trained
with the network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses, miners
from torch import nn

from bench.core.errors import BenchError
from bench.core.ranges import FRACTION, NON_NEGATIVE, POSITIVE, Range


class MinedTripletLoss(nn.Module):
    """Triplet margin loss over the triplets a semi-hard miner picks from the batch."""

    def __init__(self, margin: float) -> None:
        super().__init__()
        self.miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")
        self.loss = losses.TripletMarginLoss(margin=margin)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(embeddings, labels, self.miner(embeddings, labels))


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


def _supcon(
    num_classes: int, dim: int, *, temperature: Annotated[float, POSITIVE] = 0.1
) -> nn.Module:
    return losses.SupConLoss(temperature=temperature)


def _triplet(
    num_classes: int, dim: int, *, margin: Annotated[float, NON_NEGATIVE] = 0.2
) -> nn.Module:
    return MinedTripletLoss(margin)


def _proxy_anchor(
    num_classes: int,
    dim: int,
    *,
    margin: Annotated[float, NON_NEGATIVE] = 0.1,
    alpha: Annotated[float, POSITIVE] = 32.0,
) -> nn.Module:
    return losses.ProxyAnchorLoss(num_classes, dim, margin=margin, alpha=alpha)


def _centre_triplet(
    num_classes: int,
    dim: int,
    *,
    margin: Annotated[float, NON_NEGATIVE] = 0.2,
    centres: str = "running",
    momentum: Annotated[float, FRACTION] = 0.9,
) -> nn.Module:
    if centres not in ("running", "learned"):
        raise BenchError(
            f"class-centre triplet: centres must be 'running' or 'learned', got {centres!r}."
        )
    return ClassCentreTripletLoss(num_classes, dim, margin, centres, momentum)


def _centre(
    num_classes: int,
    dim: int,
    *,
    alpha: Annotated[float, Range(low=0, high=1, low_open=True)] = 0.5,
) -> nn.Module:
    return CentreLoss(num_classes, dim, alpha)


# Learning-rate multiplier of a loss's own parameters where its paper sets one: proxy-anchor's
# proxies learn 100 times faster than the network (Kim et al., CVPR 2020). Others: 1.
LR_MULTIPLIERS: dict[str, float] = {"proxy-anchor": 100.0}

METRIC_LOSSES: dict[str, Callable[..., nn.Module]] = {
    "supcon": _supcon,
    "triplet": _triplet,
    "proxy-anchor": _proxy_anchor,
    "centre-triplet": _centre_triplet,
    "centre": _centre,
}
