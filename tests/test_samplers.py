"""Epoch orderings: validity, determinism, and the class balance they promise."""

from __future__ import annotations

import torch

from bench.components.samplers import class_balanced_order, instance_order

LABELS = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)


def test_instance_order_is_a_permutation() -> None:
    order = instance_order(LABELS, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(len(LABELS)))


def test_class_balanced_draws_classes_uniformly() -> None:
    generator = torch.Generator().manual_seed(0)
    draws = torch.cat([class_balanced_order(LABELS, generator) for _ in range(300)])
    shares = torch.bincount(LABELS[draws], minlength=3).double() / len(draws)
    # 30 000 draws: the standard error of each share is about 0.003.
    assert torch.allclose(shares, torch.full((3,), 1 / 3, dtype=torch.double), atol=0.015)


def test_class_balanced_draws_items_uniformly_within_a_class() -> None:
    generator = torch.Generator().manual_seed(1)
    draws = torch.cat([class_balanced_order(LABELS, generator) for _ in range(300)])
    minority = draws[LABELS[draws] == 1]
    per_item = torch.bincount(minority - 90, minlength=9).double() / len(minority)
    assert torch.allclose(per_item, torch.full((9,), 1 / 9, dtype=torch.double), atol=0.02)


def test_class_balanced_ignores_absent_classes_and_is_deterministic() -> None:
    labels = torch.tensor([0, 0, 0, 2, 2])  # class 1 has no items
    first = class_balanced_order(labels, torch.Generator().manual_seed(7))
    again = class_balanced_order(labels, torch.Generator().manual_seed(7))
    assert torch.equal(first, again)
    assert len(first) == len(labels)
    assert set(labels[first].tolist()) <= {0, 2}
