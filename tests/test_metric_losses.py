"""Metric-learning losses: ours against hand computations, the library's against slow references,
and the property each method's paper defines."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.components.catalogue import METRIC_LOSSES
from bench.components.metric_losses import CentreLoss, ClassCentreTripletLoss
from bench.components.models import build_classifier
from bench.components.settings import TrainingSettings
from bench.recipes.methods import MethodRegistry
from bench.stage1.augment import StrongAugment
from bench.stage1.job import build_objective
from bench.stage1.training import Training, train_stage1


def _embeddings(n: int = 12, dim: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    embeddings = F.normalize(torch.randn(n, dim, generator=generator), dim=1)
    return embeddings, torch.arange(n) % 3


def _slow_supcon(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    """Khosla et al. (2020), eq. 2: mean over anchors with positives."""
    z, y = embeddings.tolist(), labels.tolist()
    total, anchors = 0.0, 0
    for i in range(len(z)):
        positives = [p for p in range(len(z)) if p != i and y[p] == y[i]]
        if not positives:
            continue
        sims = {
            a: sum(u * v for u, v in zip(z[i], z[a], strict=True)) / temperature
            for a in range(len(z))
            if a != i
        }
        log_denominator = math.log(sum(math.exp(s) for s in sims.values()))
        total += -sum(sims[p] - log_denominator for p in positives) / len(positives)
        anchors += 1
    return total / anchors


def test_supcon_matches_the_papers_formula() -> None:
    embeddings, labels = _embeddings()
    loss = METRIC_LOSSES["supcon"](np.ones(3), 5, temperature=0.1)(embeddings, labels)
    assert float(loss) == pytest.approx(_slow_supcon(embeddings, labels, 0.1), rel=1e-4)


def test_triplet_is_zero_when_classes_are_far_apart_and_positive_otherwise() -> None:
    loss = METRIC_LOSSES["triplet"](np.ones(2), 2, margin=0.2)
    separated = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert float(loss(separated, labels)) == 0.0
    # Semi-hard triplets: the negative is farther than the positive, but within the margin.
    close = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.3], [1.0, 0.35], [1.0, -0.3]]), dim=1)
    assert float(loss(close, torch.tensor([0, 0, 1, 1]))) > 0


def test_proxy_anchor_trains_its_proxies() -> None:
    loss_fn = METRIC_LOSSES["proxy-anchor"](np.ones(3), 5, margin=0.1, alpha=32.0)
    embeddings, labels = _embeddings()
    proxies = list(loss_fn.parameters())
    assert len(proxies) == 1 and proxies[0].shape == (3, 5)
    loss_fn(embeddings.requires_grad_(), labels).backward()
    assert proxies[0].grad is not None and proxies[0].grad.abs().sum() > 0


def test_centre_loss_value_and_the_papers_centre_update() -> None:
    loss_fn = CentreLoss(num_classes=2, dim=2, alpha=0.5)
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    # Centres start at zero: ½(1 + 1 + 2) / 3.
    assert float(loss_fn.train()(embeddings, labels)) == pytest.approx(2 / 3)
    # Δc_0 = (2·0 − (1, 1)) / 3, c_0 ← 0 − 0.5·Δc_0 = (1/6, 1/6); Δc_1 = −(1, 1)/2 → c_1 = (¼, ¼).
    assert loss_fn.centres.flatten().tolist() == pytest.approx([1 / 6, 1 / 6, 0.25, 0.25])
    loss_fn.eval()(embeddings, labels)
    assert loss_fn.centres.flatten().tolist() == pytest.approx([1 / 6, 1 / 6, 0.25, 0.25])


def test_class_centre_triplet_hand_computed_with_fixed_centres() -> None:
    loss_fn = ClassCentreTripletLoss(2, 2, margin=0.5, centres="learned", momentum=0.9)
    with torch.no_grad():
        loss_fn.centres.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    embeddings = torch.tensor([[1.0, 0.0], [math.sqrt(0.5), math.sqrt(0.5)]])
    labels = torch.tensor([0, 0])
    # Anchor 1: own 0, other √2 → max(0, 0 − √2 + 0.5) = 0.
    # Anchor 2: equidistant (d) from both → max(0, d − d + 0.5) = 0.5.
    assert float(loss_fn(embeddings, labels).detach()) == pytest.approx(0.25, abs=1e-6)


def test_class_centre_triplet_running_centres_move_towards_class_means() -> None:
    loss_fn = ClassCentreTripletLoss(2, 3, margin=0.2, centres="running", momentum=0.5).train()
    embeddings, labels = _embeddings(n=8, dim=3, seed=2)
    labels = labels % 2
    before = loss_fn.centres.clone()
    loss_fn(embeddings.requires_grad_(), labels).backward()  # the update must not break autograd
    for c in (0, 1):
        mean = embeddings[labels == c].detach().mean(0)
        expected = F.normalize(0.5 * before[c] + 0.5 * mean, dim=0)
        assert torch.allclose(loss_fn.centres[c], expected, atol=1e-6)


def _slow_nt_xent(z: list[list[float]], temperature: float) -> float:
    """SimCLR's NT-Xent (Chen et al. 2020, Algorithm 1): rows k and k + N are two views of
    image k; the mean over all 2N rows of −log(exp(s_pos/τ) / Σ_{j≠i} exp(s_ij/τ)), s cosine."""
    n = len(z) // 2

    def cosine(u: list[float], v: list[float]) -> float:
        dot = sum(a * b for a, b in zip(u, v, strict=True))
        return dot / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))

    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        others = sum(math.exp(cosine(z[i], z[j]) / temperature) for j in range(2 * n) if j != i)
        total -= math.log(math.exp(cosine(z[i], z[positive]) / temperature) / others)
    return total / (2 * n)


def _two_views(n: int = 6, dim: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    embeddings = F.normalize(torch.randn(2 * n, dim, generator=generator), dim=1)
    return embeddings, torch.arange(n).repeat(2)


def test_nt_xent_is_simclrs_loss_and_ignores_labels() -> None:
    loss_fn = METRIC_LOSSES["nt-xent"](np.ones(3), 5, temperature=0.5)
    embeddings, instances = _two_views()
    labels = torch.tensor([0, 1, 2, 0, 1, 2]).repeat(2)
    value = float(loss_fn(embeddings, labels, instances=instances))
    assert value == pytest.approx(_slow_nt_xent(embeddings.tolist(), 0.5), rel=1e-5)
    for seed in range(3):
        permuted = labels[torch.randperm(12, generator=torch.Generator().manual_seed(seed))]
        assert float(loss_fn(embeddings, permuted, instances=instances)) == value


def test_a_simclr_stage1_learns_nothing_from_labels() -> None:
    """Trained with the labels or with them permuted, the backbone and projection are the same
    to the bit; only the detached linear probe (the head) reads labels."""
    recipe = MethodRegistry().get("simclr").stage1
    images = torch.randint(
        0, 256, (8, 3, 16, 16), generator=torch.Generator().manual_seed(5), dtype=torch.uint8
    )
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0])
    states = []
    for train_labels in (labels, labels[torch.tensor([7, 6, 5, 4, 3, 2, 1, 0])]):
        objective = build_objective(recipe, np.array([4, 2, 2]), epochs=1)
        torch.manual_seed(0)
        model = build_classifier("resnet-compact", 3, embedding_dim=recipe.metric.embedding_dim)
        settings = TrainingSettings(epochs=1, batch_size=4, warmup_epochs=0, min_steps=0)
        data = (images, train_labels)
        training = Training(
            model, data, data, objective, settings, torch.device("cpu"), augment=StrongAugment()
        )
        states.append(train_stage1(dataclasses.replace(training, progress=False)).model)
    first, second = (dict(model.state_dict()) for model in states)
    learned = [k for k in first if not k.startswith("head.")]
    assert learned and all(torch.equal(first[k], second[k]) for k in learned)
    assert not torch.equal(first["head.weight"], second["head.weight"])
