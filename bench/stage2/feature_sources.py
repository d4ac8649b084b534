"""Where stage 2 gets its features: cached tensors, or images through the frozen backbone."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from bench.components.models import Classifier
from bench.stage1.augment import Augment, Normalizer
from bench.stage1.training import predict


class FeatureSource:
    """Training rows by index (for fitting a head) and whole splits (for scoring)."""

    train_labels: torch.Tensor

    def train_batch(self, index: torch.Tensor) -> torch.Tensor:
        """Features of the training rows `index`."""
        raise NotImplementedError

    def split(self, name: str) -> torch.Tensor:
        """Features of a whole split (`train`, `val` or `test`), un-augmented."""
        raise NotImplementedError


class CachedFeatures(FeatureSource):
    """The `features` mode: features computed once by the frozen stage-1 network.

    Training rows are the un-augmented train features, optionally followed by features of
    augmented views of the train images (`train_rows`, `train_labels`).
    """

    def __init__(
        self, splits: dict[str, torch.Tensor], train_rows: torch.Tensor, train_labels: torch.Tensor
    ) -> None:
        self.splits, self.train_rows, self.train_labels = splits, train_rows, train_labels

    def train_batch(self, index: torch.Tensor) -> torch.Tensor:
        return self.train_rows[index]

    def split(self, name: str) -> torch.Tensor:
        return self.splits[name]


@dataclass
class BatchNormFinetuning(FeatureSource):
    """The `finetune-bn` mode: augmented images through the frozen backbone in train mode.

    Weights stay frozen but batch-norm running statistics follow the re-balanced batches, as in
    the original decoupling code (the backbone stayed in train mode while the head was
    re-trained). Evaluation splits are re-computed with the updated statistics.
    """

    model: Classifier
    images: dict[str, torch.Tensor]
    train_labels: torch.Tensor
    normalizer: Normalizer
    device: torch.device
    seed: int
    augment: Augment = field(default_factory=Augment)  # as stage 1 trained

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def train_batch(self, index: torch.Tensor) -> torch.Tensor:
        self.model.backbone.train()
        batch = self.augment(self.images["train"][index].to(self.device), self.generator)
        return self.model.backbone(self.normalizer(batch))

    def split(self, name: str) -> torch.Tensor:
        features, _ = predict(self.model, self.images[name], self.normalizer, self.device)
        return features
