"""The long-tailed contrastive losses (KCL, BCL, PaCo): each against a slow reference that
follows its paper's formula on random tensors, and the property its paper defines."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses

from bench.components.catalogue import METRIC_LOSSES
from bench.components.contrastive import k_positive_mask


def _views(labels: list[int], views: int = 2, dim: int = 6, seed: int = 0):
    """Unit embeddings of `views` views of images with `labels`, stacked view after view."""
    generator = torch.Generator().manual_seed(seed)
    n = len(labels)
    embeddings = F.normalize(torch.randn(views * n, dim, generator=generator), dim=1)
    return embeddings, torch.tensor(labels).repeat(views), torch.arange(n).repeat(views)


def _slow_mean_over_positives(
    z: list[list[float]], positives: list[list[bool]], temperature: float
) -> float:
    """−(1/|P_i|) Σ_{p∈P_i} log(exp(z_i·z_p/τ) / Σ_{a≠i} exp(z_i·z_a/τ)), averaged over the
    anchors with a positive: the form KCL's loss takes (Kang et al. 2021, eq. 3)."""
    total, anchors = 0.0, 0
    for i, row in enumerate(positives):
        chosen = [p for p, is_positive in enumerate(row) if is_positive]
        if not chosen:
            continue
        sims = [
            sum(a * b for a, b in zip(z[i], z[j], strict=True)) / temperature for j in range(len(z))
        ]
        log_denominator = math.log(sum(math.exp(s) for j, s in enumerate(sims) if j != i))
        total -= sum(sims[p] - log_denominator for p in chosen) / len(chosen)
        anchors += 1
    return total / anchors


# KCL: k positives per anchor.
LONG_TAILED = [0] * 10 + [1] * 3 + [2]  # 10, 3 and 1 images of three classes


def test_kcl_gives_every_anchor_its_other_view_and_exactly_k_of_its_class() -> None:
    _, labels, instances = _views(LONG_TAILED)
    torch.manual_seed(0)
    mask = k_positive_mask(labels, instances, k=6)
    n = len(LONG_TAILED)
    own_view = torch.arange(2 * n).remainder(n)
    for i in range(2 * n):
        positives = mask[i].nonzero().flatten()
        assert bool((labels[positives] == labels[i]).all())  # only its class
        assert i not in positives.tolist()
        others = [p for p in positives.tolist() if instances[p] != instances[i]]
        views = [p for p in positives.tolist() if instances[p] == instances[i]]
        assert views == [int(j) for j in (own_view == own_view[i]).nonzero().flatten() if j != i]
        available = 2 * (LONG_TAILED.count(int(labels[i])) - 1)  # rows of its class's other images
        assert len(others) == min(6, available)  # 6 for the head class, 4 and 0 below it
    # One view per image: no own view, k of the class where it has them.
    _, labels, instances = _views(LONG_TAILED, views=1)
    counts = k_positive_mask(labels, instances, k=6).sum(1)
    assert counts.tolist() == [6] * 10 + [2] * 3 + [0]


def test_kcl_draws_its_k_positives_uniformly() -> None:
    _, labels, instances = _views([0] * 11, views=1)
    torch.manual_seed(1)
    chosen = sum(k_positive_mask(labels, instances, k=6).float() for _ in range(2000)) / 2000
    off_diagonal = chosen[~torch.eye(11, dtype=torch.bool)]
    assert float(off_diagonal.min()) > 0.55 and float(off_diagonal.max()) < 0.65  # 6/10 each


def test_kcl_matches_its_formula_and_is_supcon_when_k_covers_the_class() -> None:
    embeddings, labels, instances = _views(LONG_TAILED, seed=3)
    loss_fn = METRIC_LOSSES["kcl"](3, 6, k=6, temperature=0.07)
    torch.manual_seed(7)
    mask = k_positive_mask(labels, instances, k=6)
    torch.manual_seed(7)
    value = float(loss_fn(embeddings, labels, instances=instances))
    assert value == pytest.approx(
        _slow_mean_over_positives(embeddings.tolist(), mask.tolist(), 0.07), rel=1e-5
    )
    # With k at least the class's size every same-class row is a positive: SupCon's loss.
    everything = METRIC_LOSSES["kcl"](3, 6, k=100, temperature=0.1)
    supcon = losses.SupConLoss(temperature=0.1)
    assert float(everything(embeddings, labels, instances=instances)) == pytest.approx(
        float(supcon(embeddings, labels)), rel=1e-5
    )
