"""Batched image augmentation as tensor arithmetic on the training device.

One affine warp per image (flip, rotation, scale, shift) through a single `grid_sample`, then
per-image brightness, contrast and saturation jitter. Dermoscopy has no canonical orientation,
so flips on both axes and any rotation are label-preserving; radiology has a left and a right
(a flipped left kidney is a right one), so a dataset of fixed orientation trains without flips
and with small rotations (`for_orientation`). The strong augmentation of
contrastive methods warps a random resized crop instead and jitters colour harder; mixup
blends the images of a batch in pairs. No per-image Python loop anywhere.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# An augmentation: a uint8 batch and the generator its draws come from, to float [0, 255].
Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
# Rotations of a fixed-orientation image (radiology): a patient lies a little askew, never
# upside down.
FIXED_ROTATION_DEG = 10.0
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights, as torchvision's greyscale
# RGB to YIQ (FCC NTSC): hue is the angle of the (I, Q) chroma plane.
YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def _uniform_draws(
    count: int, n: int, generator: torch.Generator, device: torch.device
) -> Callable[[float, float], torch.Tensor]:
    """`uniform(low, high)`, each call the next of `count` rows of `n` draws made at once on the
    CPU from `generator` (so a seed gives the same augmentation on any device) and moved to
    `device` in one copy."""
    draws = iter(torch.rand(count, n, generator=generator).to(device, non_blocking=True))

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * next(draws)

    return uniform


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
    flips: bool = True

    @classmethod
    def for_orientation(cls, orientation: str) -> Augment:
        """The augmentation of images whose orientation is `free` (the defaults) or `fixed`
        (no flips, rotations within ±FIXED_ROTATION_DEG)."""
        return cls() if orientation == "free" else cls(FIXED_ROTATION_DEG, flips=False)

    def as_dict(self) -> dict[str, object]:
        """The recorded form; `flips` only when off, so free-orientation records keep theirs."""
        recorded = dataclasses.asdict(self)
        if self.flips:
            del recorded["flips"]
        return recorded

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a uint8 batch; returns float values in [0, 255]. Randomness from `generator`
        (on the CPU, so a seed gives the same augmentation on any device): all of a batch's
        draws are made at once and reach the device in one copy."""
        n = batch.shape[0]
        uniform = _uniform_draws(9, n, generator, batch.device)

        angle = uniform(-1, 1) * math.radians(self.max_rotation_deg)
        scale = uniform(*self.scale)
        flip_x = torch.where(uniform(0, 1) < 0.5 * self.flips, -1.0, 1.0)  # drawn either way:
        flip_y = torch.where(uniform(0, 1) < 0.5 * self.flips, -1.0, 1.0)  # the same stream
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


def _warp(batch: torch.Tensor, linear: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Each image resampled at `linear @ (x, y) + shift` (normalised coordinates, one 2×2
    matrix and shift per image), reflected at the borders."""
    theta = torch.cat([linear, shift[:, :, None]], 2)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    return F.grid_sample(
        batch.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )


def _luma(batch: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(LUMA, device=batch.device, dtype=batch.dtype).view(1, 3, 1, 1)
    return (batch * weights).sum(1, keepdim=True)


def _rotate_hue(batch: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Hue rotated by `turns` of a full turn per image, as a rotation of the YIQ chroma
    plane (a linear stand-in for torchvision's HSV shift: one matrix product per image)."""
    to_yiq = torch.tensor(YIQ, device=batch.device, dtype=batch.dtype)
    angle = 2 * math.pi * turns
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.zeros(len(turns), 3, 3, device=batch.device, dtype=batch.dtype)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1], rotation[:, 1, 2] = cos, -sin
    rotation[:, 2, 1], rotation[:, 2, 2] = sin, cos
    matrices = torch.linalg.inv(to_yiq) @ rotation @ to_yiq
    return torch.einsum("nij,njhw->nihw", matrices, batch)


@dataclass(frozen=True)
class StrongAugment:
    """The augmentation of contrastive views (SimCLR, Chen et al., ICML 2020, at CIFAR scale):
    a random resized crop of 20–100 % of the image's area at an aspect ratio of 3/4 to 4/3
    (the lower bound of SupCon's and BCL's CIFAR pipelines; SimCLR's 8 % leaves a few pixels of
    a 28-px image), with the shared flips and rotation; then, with probability 0.8, brightness,
    contrast and saturation jitter of 0.4 and a hue shift of up to 0.1 of a turn (SimCLR's
    colour distortion at strength 0.5, its CIFAR setting), and greyscale with probability 0.2.
    A crop side longer than the image is cut to it (torchvision redraws instead)."""

    crop_area: tuple[float, float] = (0.2, 1.0)
    crop_aspect: tuple[float, float] = (3 / 4, 4 / 3)
    max_rotation_deg: float = 180.0
    jitter: float = 0.4
    hue: float = 0.1
    jitter_probability: float = 0.8
    greyscale_probability: float = 0.2
    flips: bool = True

    @classmethod
    def for_orientation(cls, orientation: str) -> StrongAugment:
        """As `Augment.for_orientation`: no flips and small rotations for `fixed`."""
        return (
            cls()
            if orientation == "free"
            else cls(max_rotation_deg=FIXED_ROTATION_DEG, flips=False)
        )

    @classmethod
    def geometric(cls, orientation: str) -> StrongAugment:
        """The same crops, flips and rotations without the colour distortion (no jitter, no
        greyscale): for data whose classes differ in colour, which the distortion teaches a
        contrastive loss to ignore (see docs/methods.md)."""
        return dataclasses.replace(
            cls.for_orientation(orientation), jitter_probability=0.0, greyscale_probability=0.0
        )

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a uint8 batch; returns float values in [0, 255]. Randomness from
        `generator`, drawn for the whole batch at once (as `Augment`)."""
        n = batch.shape[0]
        uniform = _uniform_draws(13, n, generator, batch.device)

        area = uniform(*self.crop_area)
        aspect = torch.exp(uniform(math.log(self.crop_aspect[0]), math.log(self.crop_aspect[1])))
        width, height = (area * aspect).sqrt().clamp(max=1), (area / aspect).sqrt().clamp(max=1)
        shift = torch.stack([(1 - width) * uniform(-1, 1), (1 - height) * uniform(-1, 1)], 1)
        angle = uniform(-1, 1) * math.radians(self.max_rotation_deg)
        flip_x = torch.where(uniform(0, 1) < 0.5 * self.flips, -1.0, 1.0)  # drawn either way:
        flip_y = torch.where(uniform(0, 1) < 0.5 * self.flips, -1.0, 1.0)  # the same stream
        cos, sin = torch.cos(angle), torch.sin(angle)
        linear = torch.stack(
            [
                torch.stack([width * cos * flip_x, -width * sin * flip_y], 1),
                torch.stack([height * sin * flip_x, height * cos * flip_y], 1),
            ],
            1,
        )
        out = _warp(batch, linear, shift)

        jittered = uniform(0, 1) < self.jitter_probability

        def factor(spread: float) -> torch.Tensor:
            return torch.where(jittered, uniform(1 - spread, 1 + spread), 1.0).view(n, 1, 1, 1)

        brightness, contrast, saturation = (factor(self.jitter) for _ in range(3))
        turns = torch.where(jittered, uniform(-self.hue, self.hue), 0.0)
        greyscale = (uniform(0, 1) < self.greyscale_probability).view(n, 1, 1, 1)
        out = (out * brightness).clamp(0, 255)
        if out.shape[1] != 3:
            mean = out.mean(dim=(1, 2, 3), keepdim=True)
            return ((out - mean) * contrast + mean).clamp(0, 255)
        mean = _luma(out).mean(dim=(2, 3), keepdim=True)
        out = ((out - mean) * contrast + mean).clamp(0, 255)
        grey = _luma(out)
        out = ((out - grey) * saturation + grey).clamp(0, 255)
        out = _rotate_hue(out, turns).clamp(0, 255)
        return torch.where(greyscale, _luma(out).expand_as(out), out)


# The augmentations a recipe's `[augment] strength` names, built for an orientation.
AUGMENTATIONS: dict[str, Callable[[str], Augmentation]] = {
    "standard": Augment.for_orientation,
    "strong": StrongAugment.for_orientation,
    "geometric": StrongAugment.geometric,
}


@dataclass(frozen=True)
class Mixup:
    """One batch's mixup (Zhang et al., ICLR 2018): image i blended with image `partner[i]` of
    the same batch, λ·x_i + (1 − λ)·x_partner, and its loss likewise blended between the two
    labels."""

    lam: float
    partner: torch.Tensor

    @classmethod
    def draw(
        cls, alpha: float, n: int, rng: np.random.Generator, generator: torch.Generator
    ) -> Mixup:
        """λ ~ Beta(α, α) from `rng`, partners a permutation of the batch from `generator`."""
        return cls(float(rng.beta(alpha, alpha)), torch.randperm(n, generator=generator))

    def images(self, batch: torch.Tensor) -> torch.Tensor:
        """The blended batch (float)."""
        partner = self.partner.to(batch.device)
        return self.lam * batch.float() + (1 - self.lam) * batch[partner].float()

    def loss(
        self,
        fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor],
        logits: torch.Tensor,
        targets: torch.Tensor,
        weights: torch.Tensor | None,
    ) -> torch.Tensor:
        """λ·loss(own labels) + (1 − λ)·loss(the partners' labels)."""
        partner = self.partner.to(targets.device)
        own, other = fn(logits, targets, weights), fn(logits, targets[partner], weights)
        return self.lam * own + (1 - self.lam) * other
