"""The long-tailed contrastive losses (KCL, BCL, PaCo): each against a slow reference that
follows its paper's formula on random tensors, and the property its paper defines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses

from bench.components.catalogue import METRIC_LOSSES
from bench.components.contrastive import (
    class_averaged_log_probabilities,
    contrast_log_probabilities,
    k_positive_mask,
    paco_positive_weights,
)
from bench.components.models import build_classifier
from bench.recipes.methods import MethodRegistry
from bench.stage1.job import build_objective


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
    loss_fn = METRIC_LOSSES["kcl"](np.ones(3), 6, k=6, temperature=0.07)
    torch.manual_seed(7)
    mask = k_positive_mask(labels, instances, k=6)
    torch.manual_seed(7)
    value = float(loss_fn(embeddings, labels, instances=instances))
    assert value == pytest.approx(
        _slow_mean_over_positives(embeddings.tolist(), mask.tolist(), 0.07), rel=1e-5
    )
    # With k at least the class's size every same-class row is a positive: SupCon's loss.
    everything = METRIC_LOSSES["kcl"](np.ones(3), 6, k=100, temperature=0.1)
    supcon = losses.SupConLoss(temperature=0.1)
    assert float(everything(embeddings, labels, instances=instances)) == pytest.approx(
        float(supcon(embeddings, labels)), rel=1e-5
    )


# BCL: class-averaging, class-complement, logit compensation.


def _slow_bcl(
    z: list[list[float]], labels: list[int], prototypes: list[list[float]], temperature: float
) -> float:
    """Zhu et al. (2022), eq. 7: for each row i, the mean over its positives p (other rows of
    its class and its prototype) of −log(exp(z_i·z_p/τ) / Σ_c (1/|S_c|) Σ_{k∈S_c}
    exp(z_i·z_k/τ)), S_c = class c's rows other than i plus prototype c; mean over rows."""
    contrast = [*z, *prototypes]
    targets = [*labels, *range(len(prototypes))]
    total = 0.0
    for i in range(len(z)):

        def sim(k: int, i: int = i) -> float:
            return sum(a * b for a, b in zip(z[i], contrast[k], strict=True)) / temperature

        denominator = 0.0
        for c in range(len(prototypes)):
            members = [k for k in range(len(contrast)) if targets[k] == c and k != i]
            denominator += sum(math.exp(sim(k)) for k in members) / len(members)
        positives = [k for k in range(len(contrast)) if targets[k] == labels[i] and k != i]
        total -= sum(sim(p) - math.log(denominator) for p in positives) / len(positives)
    return total / len(z)


def _prototypes(classes: int, dim: int = 6, seed: int = 9) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(classes, dim, generator=generator), dim=1)


def test_bcl_matches_its_formula() -> None:
    embeddings, labels, _ = _views([0, 0, 0, 1, 2, 2], seed=4)
    prototypes = _prototypes(4)  # class 3 has no image in the batch: its prototype stands in
    loss = METRIC_LOSSES["bcl"](np.ones(4), 6, temperature=0.1)(
        embeddings, labels, prototypes=prototypes
    )
    expected = _slow_bcl(embeddings.tolist(), labels.tolist(), prototypes.tolist(), 0.1)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_bcl_weighs_each_class_once_whatever_its_batch_count() -> None:
    """Copies of a negative class's row change SupCon's denominator, not BCL's: the other
    rows' log-probabilities against the original rows and the prototypes stay the same. (BCL
    averages within a class, its prototype included: the prototype of the class copied is set
    to its row, so that the copies leave the class's mean as it was.)"""
    embeddings, labels, _ = _views([0, 0, 1, 2], views=1, seed=5)
    prototypes = _prototypes(3)
    prototypes[2] = embeddings[3]
    more = torch.cat([embeddings, embeddings[3:].repeat(5, 1)])  # class 2 six times as frequent
    more_labels = torch.cat([labels, labels[3:].repeat(5)])
    before = class_averaged_log_probabilities(embeddings, labels, prototypes, 0.1)
    after = class_averaged_log_probabilities(more, more_labels, prototypes, 0.1)
    same_columns = [0, 1, 2, 3, 9, 10, 11]  # the four original rows, then the prototypes
    assert torch.allclose(after[:3, same_columns], before[:3], atol=1e-5)
    plain_before = contrast_log_probabilities(embeddings, 0.1)
    plain_after = contrast_log_probabilities(more, 0.1)
    assert not torch.allclose(plain_after[:3, :4], plain_before[:3], atol=1e-3)


def test_bcl_complements_the_batch_with_every_class_prototype() -> None:
    """A class absent from the batch still enters every row's denominator, by its prototype."""
    embeddings, labels, _ = _views([0, 0, 1, 1], seed=6)
    prototypes = _prototypes(3)
    loss_fn = METRIC_LOSSES["bcl"](np.ones(3), 6, temperature=0.1)
    moved = prototypes.clone()
    moved[2] = -moved[2]
    assert float(loss_fn(embeddings, labels, prototypes=prototypes)) != pytest.approx(
        float(loss_fn(embeddings, labels, prototypes=moved))
    )


def test_bcls_logit_compensation_is_the_log_prior_and_its_prototypes_come_from_the_head() -> None:
    recipe = MethodRegistry().get("bcl").stage1
    counts = np.array([50, 10, 3])
    objective = build_objective(recipe, counts, epochs=1)
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 1, 2, 0, 0, 1, 2, 2])
    prior = torch.tensor(counts / counts.sum(), dtype=torch.float32)
    compensated = F.cross_entropy(logits + prior.log(), targets)
    assert float(objective.loss.fn(logits, targets, None)) == pytest.approx(float(compensated))
    assert objective.metric_weight == 0.35 and objective.views == 2
    model = build_classifier("resnet-compact", 3, embedding_dim=128, prototypes=True)
    prototypes = model.prototypes()
    assert prototypes.shape == (3, 128)
    assert torch.allclose(prototypes.norm(dim=1), torch.ones(3))
    prototypes.sum().backward()  # the class weights learn through their prototypes
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0


# PaCo: learnable centres inside the contrast, with α re-weighting.


def _slow_paco(
    z: list[list[float]],
    labels: list[int],
    logits: list[list[float]],
    log_prior: list[float],
    hyper: tuple[float, float, float, float],
) -> float:
    """Cui et al. (2021): for each row i, contrast the C centres (similarity logit_ic + log π_c)
    and the other rows (z_i·z_j/τ, weighted γ in the denominator); the positives are its own
    centre (weight β) and its class's other rows (weight α each); the weighted mean of their
    −log-probabilities, then the mean over rows."""
    alpha, beta, gamma, temperature = hyper
    total = 0.0
    for i in range(len(z)):
        centres = [logits[i][c] + log_prior[c] for c in range(len(log_prior))]
        rows = {
            j: sum(a * b for a, b in zip(z[i], z[j], strict=True)) / temperature
            for j in range(len(z))
            if j != i
        }
        log_denominator = math.log(
            sum(math.exp(s) for s in centres) + gamma * sum(math.exp(s) for s in rows.values())
        )
        positives = [(beta, centres[labels[i]])]
        positives += [(alpha, s) for j, s in rows.items() if labels[j] == labels[i]]
        weight = sum(w for w, _ in positives)
        total -= sum(w * (s - log_denominator) for w, s in positives) / weight
    return total / len(z)


def test_paco_matches_its_formula() -> None:
    embeddings, labels, _ = _views([0, 0, 0, 1, 2, 2], seed=8)
    counts = np.array([30, 8, 4, 2])  # class 3 has no image in the batch
    logits = torch.randn(len(labels), 4, generator=torch.Generator().manual_seed(2))
    hyper = (0.3, 1.0, 0.7, 0.2)
    alpha, beta, gamma, temperature = hyper
    loss_fn = METRIC_LOSSES["paco"](
        counts, 6, alpha=alpha, beta=beta, gamma=gamma, temperature=temperature
    )
    log_prior = np.log(counts / counts.sum()).tolist()
    expected = _slow_paco(embeddings.tolist(), labels.tolist(), logits.tolist(), log_prior, hyper)
    assert float(loss_fn(embeddings, labels, logits=logits)) == pytest.approx(expected, rel=1e-5)


def test_paco_weighs_the_centre_beta_and_each_same_class_sample_alpha() -> None:
    labels = torch.tensor([0, 0, 0, 1, 2, 0])  # four rows of class 0, one each of 1 and 2
    weights = paco_positive_weights(labels, 3, alpha=0.05, beta=1.0)
    centres, samples = weights[:, :3], weights[:, 3:]
    assert torch.allclose(weights.sum(1), torch.ones(6))
    for i, label in enumerate(labels.tolist()):
        others = [j for j in range(6) if j != i and labels[j] == label]
        total = 1.0 + 0.05 * len(others)  # β + α·|P_i|
        assert float(centres[i, label]) == pytest.approx(1.0 / total)
        assert centres[i].count_nonzero() == 1
        for j in range(6):
            expected = 0.05 / total if j in others else 0.0
            assert float(samples[i, j]) == pytest.approx(expected)


def test_paco_trains_every_class_centre_and_without_samples_is_balanced_softmax() -> None:
    embeddings, labels, _ = _views([0, 0, 1, 1], seed=3)
    counts = np.array([20, 5, 2])  # class 2 is absent from the batch
    head = torch.nn.Linear(6, 3)
    logits = head(torch.randn(len(labels), 6, generator=torch.Generator().manual_seed(4)))
    loss_fn = METRIC_LOSSES["paco"](counts, 6, alpha=0.02, beta=1.0, gamma=1.0, temperature=0.05)
    loss_fn(embeddings, labels, logits=logits).backward()
    assert head.weight.grad is not None
    assert bool((head.weight.grad.abs().sum(1) > 0).all())  # the absent class's centre too
    # α = γ = 0: the centres alone, the cross-entropy of the prior-balanced logits.
    centres_only = METRIC_LOSSES["paco"](counts, 6, alpha=0.0, beta=1.0, gamma=0.0, temperature=1)
    prior = torch.tensor(counts / counts.sum(), dtype=torch.float32)
    logits = logits.detach()
    balanced = F.cross_entropy(logits + prior.log(), labels)
    assert float(centres_only(embeddings, labels, logits=logits)) == pytest.approx(float(balanced))
