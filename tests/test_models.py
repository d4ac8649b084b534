"""Backbones by name and the two classifier heads."""

from __future__ import annotations

import pytest
import torch

from bench.components.models import HEAD_KINDS, build_classifier, head_logits
from bench.core.errors import BenchError


@pytest.mark.parametrize("backbone", ["resnet-compact", "resnet-compact-wide", "resnet18"])
def test_backbones_map_small_images_to_class_logits(backbone: str) -> None:
    model = build_classifier(backbone, 7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_cosine_head_outputs_scaled_cosines() -> None:
    model = build_classifier("resnet-compact", 5, head="cosine", head_scale=30.0).eval()
    with torch.no_grad():
        logits = model(torch.randn(4, 3, 28, 28))
    assert logits.abs().max() <= 30.0 + 1e-4
    features = model.backbone(torch.randn(1, 3, 28, 28))
    weight = model.head.weight
    expected = 30.0 * torch.nn.functional.cosine_similarity(features, weight)
    assert torch.allclose(model.head(features)[0], expected, atol=1e-5)


def test_compact_backbones_refuse_pretrained_weights() -> None:
    with pytest.raises(BenchError, match="no pretrained weights"):
        build_classifier("resnet-compact", 7, pretrained=True)


@pytest.mark.parametrize("kind", HEAD_KINDS)
def test_head_logits_from_the_weights_are_what_the_head_computes(kind: str) -> None:
    torch.manual_seed(0)
    model = build_classifier("resnet-compact", 4, head=kind, head_scale=16.0)
    features = torch.randn(5, model.head.weight.shape[1])
    bias = getattr(model.head, "bias", None)
    expected = model.head(features)
    assert torch.allclose(head_logits(kind, features, model.head.weight, bias, 16.0), expected)
