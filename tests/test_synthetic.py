"""The embedded dataset: HAM10000's class profile, determinism, and image sanity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data import synthetic


def test_counts_follow_ham10000_profile() -> None:
    counts = synthetic.class_counts(10015, 58.3)
    assert counts == pytest.approx(list(synthetic.HAM10000_COUNTS), abs=2)


def test_imbalance_ratio_is_configurable() -> None:
    counts = np.array(synthetic.class_counts(5000, 10.0))
    assert counts.max() / counts.min() == pytest.approx(10.0, rel=0.05)
    assert list(counts) == sorted(counts, reverse=True)
    assert synthetic.class_counts(700, 1.0) == [100] * 7


def test_generation_is_deterministic_in_seed() -> None:
    counts = [5, 3, 3, 2, 2, 1, 1]
    images, labels = synthetic.generate(counts, 24, seed=4)
    again, again_labels = synthetic.generate(counts, 24, seed=4)
    other, _ = synthetic.generate(counts, 24, seed=5)
    assert images.dtype == torch.uint8 and images.shape == (17, 3, 24, 24)
    assert torch.equal(images, again) and torch.equal(labels, again_labels)
    assert not torch.equal(images, other)
    assert torch.bincount(labels, minlength=7).tolist() == counts


def test_lesion_is_darker_than_surrounding_skin() -> None:
    images, _ = synthetic.generate([20, 0, 0, 0, 0, 0, 0], 32, seed=0, difficulty=0.0)
    grey = images.float().mean(1)
    centre = grey[:, 12:20, 12:20].mean()
    ring = torch.cat([grey[:, 2:6, 8:24].flatten(1), grey[:, 26:30, 8:24].flatten(1)], 1).mean()
    assert centre < ring - 20


def test_class_means_differ_in_colour() -> None:
    # With no per-image spread, vasc's mean redness shows through the shared nuisances.
    images, labels = synthetic.generate([40, 0, 0, 0, 0, 40, 0], 32, seed=1, difficulty=0.0)
    nv, vasc = images[labels == 0].float(), images[labels == 5].float()
    redness = lambda x: (x[:, 0] - x[:, 1]).mean()  # noqa: E731
    assert redness(vasc) > redness(nv) + 5
