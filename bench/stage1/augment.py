"""Batched image augmentation as tensor arithmetic on the training device.

One affine warp per image (flip, rotation, scale, shift) through a single `grid_sample`, then
per-image brightness, contrast and saturation jitter. Dermoscopy has no canonical orientation,
so flips on both axes and any rotation are label-preserving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Normalizer:
    """Converts uint8 batches to float, standardised with per-channel training statistics,
    in channels-last memory order (the models are kept channels-last: faster convolutions on
    CPUs and GPUs alike)."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, images: torch.Tensor) -> Normalizer:
        """Channel mean and std of a uint8 N×C×H×W tensor (computed in chunks)."""
        total = torch.zeros(images.shape[1], dtype=torch.float64)
        squares = torch.zeros_like(total)
        for chunk in images.split(1024):
            values = chunk.double().div_(255).transpose(0, 1).flatten(1)
            total += values.sum(1)
            squares += (values**2).sum(1)
        count = images.numel() / images.shape[1]
        mean = total / count
        std = (squares / count - mean**2).clamp(min=1e-12).sqrt()
        return cls(mean.float(), std.float())

    def to(self, device: torch.device) -> Normalizer:
        """The same normaliser with its statistics on `device` (moved once, not per batch:
        a copy from the host would make every step wait for the GPU)."""
        return Normalizer(self.mean.to(device), self.std.to(device))

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(batch.device).view(1, -1, 1, 1)
        std = self.std.to(batch.device).view(1, -1, 1, 1)
        return ((batch.float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)


@dataclass(frozen=True)
class Augment:
    """Random geometric and photometric jitter; `None`-free defaults suit dermoscopy."""

    max_rotation_deg: float = 180.0
    scale: tuple[float, float] = (0.85, 1.15)
    max_shift: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a uint8 batch; returns float values in [0, 255]. Randomness from `generator`
        (on the CPU, so a seed gives the same augmentation on any device): all of a batch's
        draws are made at once and reach the device in one copy."""
        n, device = batch.shape[0], batch.device
        draws = iter(torch.rand(9, n, generator=generator).to(device, non_blocking=True))

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * next(draws)

        angle = uniform(-1, 1) * math.radians(self.max_rotation_deg)
        scale = uniform(*self.scale)
        flip_x = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0)
        flip_y = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [
                torch.stack([cos * flip_x, -sin * flip_y, uniform(-1, 1) * self.max_shift], 1),
                torch.stack([sin * flip_x, cos * flip_y, uniform(-1, 1) * self.max_shift], 1),
            ],
            1,
        )
        grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
        out = F.grid_sample(
            batch.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )

        brightness = uniform(1 - self.brightness, 1 + self.brightness).view(n, 1, 1, 1)
        contrast = uniform(1 - self.contrast, 1 + self.contrast).view(n, 1, 1, 1)
        saturation = uniform(1 - self.saturation, 1 + self.saturation).view(n, 1, 1, 1)
        out = out * brightness
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * contrast + mean
        if out.shape[1] == 3:
            grey = out.mean(dim=1, keepdim=True)
            out = (out - grey) * saturation + grey
        return out.clamp(0, 255)
