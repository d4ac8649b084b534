"""Batched augmentation and the optimisation schedule."""

from __future__ import annotations

import math

import pytest
import torch

from bench.augment import Augment, Normalizer
from bench.training import lr_at

IDENTITY = Augment(
    max_rotation_deg=0, scale=(1, 1), max_shift=0, brightness=0, contrast=0, saturation=0
)


def _images() -> torch.Tensor:
    return torch.randint(
        0, 256, (6, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )


def test_zero_strength_augmentation_only_flips() -> None:
    images = _images()
    out = IDENTITY(images, torch.Generator().manual_seed(0))
    candidates = [images, images.flip(-1), images.flip(-2), images.flip(-1).flip(-2)]
    for k in range(len(images)):
        assert min(float((out[k] - c[k].float()).abs().max()) for c in candidates) < 1e-3


def test_augmentation_is_deterministic_and_in_range() -> None:
    images = _images()
    first = Augment()(images, torch.Generator().manual_seed(3))
    again = Augment()(images, torch.Generator().manual_seed(3))
    assert torch.equal(first, again)
    assert first.shape == images.shape and first.min() >= 0 and first.max() <= 255
    assert not torch.allclose(first, Augment()(images, torch.Generator().manual_seed(4)))


def test_normalizer_standardises_each_channel() -> None:
    images = _images()
    normalizer = Normalizer.fit(images)
    values = images.double() / 255
    assert normalizer.mean.tolist() == pytest.approx(values.mean((0, 2, 3)).tolist(), rel=1e-5)
    out = normalizer(images)
    assert out.mean((0, 2, 3)).abs().max() < 1e-4
    assert out.std((0, 2, 3), unbiased=False).tolist() == pytest.approx([1, 1, 1], rel=1e-3)


def test_lr_warms_up_linearly_then_decays_by_cosine() -> None:
    assert lr_at(0, 100, 10, 0.1) == pytest.approx(0.01)
    assert lr_at(9, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(10, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(55, 100, 10, 0.1) == pytest.approx(0.05)
    assert lr_at(99, 100, 10, 0.1) == pytest.approx(0.05 * (1 + math.cos(math.pi * 89 / 90)))
