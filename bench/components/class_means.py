"""The nearest-class-mean classifier on features: cosine similarity to each class's mean
normalised training feature (Kang et al., ICLR 2020, its NCM). Stage 2's `ncm` method scores
with it, and the stage-1 `ncm` checkpoint rule reads the features' quality through it."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Each class's mean of L2-normalised `features`, normalised again (C×D); a class with no
    row gets a zero mean, which scores 0 against every feature."""
    normalised = F.normalize(features, dim=1)
    means = torch.zeros(num_classes, features.shape[1], dtype=normalised.dtype)
    means.index_add_(0, labels, normalised)
    return F.normalize(means, dim=1)


def class_mean_logits(features: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each row of `features` to each class mean (N×C)."""
    return F.normalize(features, dim=1) @ means.T
