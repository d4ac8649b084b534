"""Each loss and weighting against a per-sample reference loop or hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.components.catalogue import LOSSES
from bench.components.losses import (
    gcl_cloud_sizes,
    gcl_draws,
    lade_regulariser,
    ldam_margins,
    log_prior,
    margin_cross_entropy,
    vs_scales,
)
from bench.components.weighting import effective_number, inverse_frequency, sqrt_inverse_frequency

COUNTS = np.array([50, 20, 5])


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(8, 3, generator=generator) * 3, torch.tensor([0, 1, 2, 2, 1, 0, 0, 2])


def _nll(row: list[float], target: int) -> float:
    """−log softmax(row)[target] computed the slow way."""
    return -(row[target] - math.log(sum(math.exp(v) for v in row)))


def _reference_mean(losses: list[float], targets: list[int], weights: list[float] | None) -> float:
    w = [1.0] * len(losses) if weights is None else [weights[t] for t in targets]
    return sum(wi * li for wi, li in zip(w, losses, strict=True)) / sum(w)


@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 2.0]])
def test_cross_entropy_matches_per_sample_reference(weights: list[float] | None) -> None:
    logits, targets = _batch()
    loss = LOSSES["ce"](COUNTS).fn(
        logits, targets, None if weights is None else torch.tensor(weights)
    )
    expected = _reference_mean(
        [_nll(r, t) for r, t in zip(logits.tolist(), targets.tolist(), strict=True)],
        targets.tolist(),
        weights,
    )
    assert float(loss) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("gamma", [1.0, 2.0])
@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 2.0]])
def test_focal_matches_per_sample_reference(gamma: float, weights: list[float] | None) -> None:
    logits, targets = _batch(1)
    loss = LOSSES["focal"](COUNTS, gamma=gamma).fn(
        logits, targets, None if weights is None else torch.tensor(weights)
    )
    per_sample = []
    for row, t in zip(logits.tolist(), targets.tolist(), strict=True):
        p = math.exp(-_nll(row, t))
        per_sample.append(-((1 - p) ** gamma) * math.log(p))
    assert float(loss) == pytest.approx(
        _reference_mean(per_sample, targets.tolist(), weights), rel=1e-5
    )


def test_focal_hand_computed_two_class_case() -> None:
    # logits (0, 0): p_t = 1/2, loss = (1/2)^1 · log 2 with gamma 1.
    loss = LOSSES["focal"](COUNTS[:2], gamma=1.0).fn(torch.zeros(1, 2), torch.tensor([0]), None)
    assert float(loss) == pytest.approx(0.5 * math.log(2))


def test_focal_with_gamma_zero_is_cross_entropy() -> None:
    logits, targets = _batch(2)
    focal = LOSSES["focal"](COUNTS, gamma=0.0).fn(logits, targets, None)
    ce = LOSSES["ce"](COUNTS).fn(logits, targets, None)
    assert float(focal) == pytest.approx(float(ce), rel=1e-6)


def test_ldam_margins_follow_quarter_power_law() -> None:
    margins = ldam_margins(np.array([16, 1]), max_margin=0.5)
    # 1/16^(1/4) = 1/2, so the frequent class gets half the rare class's margin.
    assert margins.tolist() == pytest.approx([0.25, 0.5])


def test_ldam_subtracts_scaled_margin_from_true_logit_only() -> None:
    built = LOSSES["ldam"](COUNTS, max_margin=0.5, scale=30.0)
    assert (built.head, built.head_scale) == ("cosine", 30.0)
    logits, targets = _batch(3)
    margins = ldam_margins(COUNTS, 0.5).tolist()
    per_sample = []
    for row, t in zip(logits.tolist(), targets.tolist(), strict=True):
        shifted = list(row)
        shifted[t] -= 30.0 * margins[t]
        per_sample.append(_nll(shifted, t))
    expected = _reference_mean(per_sample, targets.tolist(), None)
    assert float(built.fn(logits, targets, None)) == pytest.approx(expected, rel=1e-5)


def test_logit_adjusted_adds_tau_log_prior() -> None:
    logits, targets = _batch(4)
    prior = COUNTS / COUNTS.sum()
    per_sample = [
        _nll([v + 2.0 * math.log(p) for v, p in zip(row, prior, strict=True)], t)
        for row, t in zip(logits.tolist(), targets.tolist(), strict=True)
    ]
    loss = LOSSES["logit-adjusted"](COUNTS, tau=2.0).fn(logits, targets, None)
    assert float(loss) == pytest.approx(
        _reference_mean(per_sample, targets.tolist(), None), rel=1e-5
    )


def test_balanced_softmax_equals_logit_adjusted_at_tau_one() -> None:
    # Ren et al. add log n_j, Menon et al. tau·log π_j: softmax ignores the shared log N.
    logits, targets = _batch(5)
    balanced = LOSSES["balanced-softmax"](COUNTS).fn(logits, targets, None)
    adjusted = LOSSES["logit-adjusted"](COUNTS, tau=1.0).fn(logits, targets, None)
    assert float(balanced) == pytest.approx(float(adjusted), rel=1e-6)
    assert log_prior(COUNTS).exp().sum().item() == pytest.approx(1.0)


def test_weighting_schemes_hand_computed() -> None:
    counts = np.array([100, 25, 4])
    # 1/n = (0.01, 0.04, 0.25), sum 0.30, scaled to sum 3.
    assert inverse_frequency(counts).tolist() == pytest.approx([0.1, 0.4, 2.5])
    # 1/sqrt(n) = (0.1, 0.2, 0.5), sum 0.8.
    assert sqrt_inverse_frequency(counts).tolist() == pytest.approx([0.375, 0.75, 1.875])
    # beta = 0.5: raw weights 0.5/(1 − 0.5^n) ≈ (0.5, 0.5, 0.5·16/15); sum scaled to 3
    # gives (45/46, 45/46, 48/46).
    assert effective_number(counts, beta=0.5).tolist() == pytest.approx(
        [45 / 46, 45 / 46, 48 / 46], rel=1e-6
    )


def test_effective_number_tends_to_inverse_frequency_as_beta_tends_to_one() -> None:
    counts = np.array([300, 30, 3])
    assert effective_number(counts, beta=1 - 1e-9).tolist() == pytest.approx(
        inverse_frequency(counts).tolist(), rel=1e-4
    )


@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 2.0]])
def test_vs_matches_per_sample_reference(weights: list[float] | None) -> None:
    gamma, tau = 0.3, 1.5
    built = LOSSES["vs"](COUNTS, gamma=gamma, tau=tau)
    assert built.head == "linear"
    logits, targets = _batch(6)
    total, n_max = sum(COUNTS), max(COUNTS)
    per_sample = []
    for row, t in zip(logits.tolist(), targets.tolist(), strict=True):
        adjusted = [
            v * (n / n_max) ** gamma + tau * math.log(n / total)
            for v, n in zip(row, COUNTS.tolist(), strict=True)
        ]
        per_sample.append(_nll(adjusted, t))
    loss = built.fn(logits, targets, None if weights is None else torch.tensor(weights))
    assert float(loss) == pytest.approx(
        _reference_mean(per_sample, targets.tolist(), weights), rel=1e-5
    )


def test_vs_scales_hand_computed() -> None:
    # (16/16)^0.5 = 1 and (1/16)^0.5 = 1/4: the rare class's logit is scaled down.
    assert vs_scales(np.array([16, 1]), gamma=0.5).tolist() == pytest.approx([1.0, 0.25])


@pytest.mark.parametrize("tau", [0.0, 1.0, 2.0])
def test_vs_with_gamma_zero_is_logit_adjustment(tau: float) -> None:
    logits, targets = _batch(7)
    vs = LOSSES["vs"](COUNTS, gamma=0.0, tau=tau).fn(logits, targets, None)
    adjusted = LOSSES["logit-adjusted"](COUNTS, tau=tau).fn(logits, targets, None)
    assert float(vs) == pytest.approx(float(adjusted), rel=1e-6)


def _lade_reference(
    logits: list[list[float]], targets: list[int], counts: list[int], remine_lambda: float
) -> float:
    """LADE's regulariser the slow way: per class y, the mean of z_y over its samples (0 when
    absent, as in the authors' code) less log of the batch mean of e^{z_y}·(1/C)/π_y, less
    λ times that log squared, weighted by −π_y."""
    total, num_classes, loss = sum(counts), len(counts), 0.0
    for y, count in enumerate(counts):
        prior = count / total
        own = [row[y] for row, t in zip(logits, targets, strict=True) if t == y]
        first = sum(own) / len(own) if own else 0.0
        mean = sum(math.exp(row[y]) / num_classes / prior for row in logits) / len(logits)
        second = math.log(mean)
        loss -= prior * (first - second - remine_lambda * second**2)
    return loss


def test_lade_regulariser_hand_computed_tiny_batch() -> None:
    # Counts (3, 1): π = (3/4, 1/4), uniform target 1/2. Class 0's sample has z_0 = 1, class 1's
    # z_1 = 2. log E_x[e^{z_0}·(1/2)/(3/4)] = log((e + 1)/3); log E_x[e^{z_1}·(1/2)/(1/4)] =
    # log(1 + e²).
    lam = 0.1
    s0, s1 = math.log((math.e + 1) / 3), math.log(1 + math.e**2)
    expected = -(0.75 * (1 - s0 - lam * s0**2) + 0.25 * (2 - s1 - lam * s1**2))
    regulariser = lade_regulariser(
        torch.tensor([[1.0, 0.0], [0.0, 2.0]]),
        torch.tensor([0, 1]),
        log_train_prior=log_prior(np.array([3, 1])),
        remine_lambda=lam,
    )
    assert float(regulariser) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("targets", [[0, 1, 2, 2, 1, 0, 0, 2], [0, 0, 1, 1, 0, 1, 0, 0]])
def test_lade_regulariser_matches_slow_reference(targets: list[int]) -> None:
    logits = _batch(8)[0]
    regulariser = lade_regulariser(
        logits, torch.tensor(targets), log_train_prior=log_prior(COUNTS), remine_lambda=0.3
    )
    expected = _lade_reference(logits.tolist(), targets, COUNTS.tolist(), 0.3)
    assert float(regulariser) == pytest.approx(expected, rel=1e-5)


def test_lade_dv_estimate_ignores_a_constant_per_class_without_remine() -> None:
    # The Donsker–Varadhan bound E_P[T] − log E_Q[e^T] is unchanged by T → T + c; ReMINE's
    # penalty (λ > 0) is what pins c.
    logits, targets = _batch(9)
    shift = torch.tensor([5.0, -3.0, 0.7])
    prior = log_prior(COUNTS)
    plain = lade_regulariser(logits, targets, log_train_prior=prior, remine_lambda=0.0)
    shifted = lade_regulariser(logits + shift, targets, log_train_prior=prior, remine_lambda=0.0)
    assert float(shifted) == pytest.approx(float(plain), rel=1e-5)
    penalised = lade_regulariser(logits + shift, targets, log_train_prior=prior, remine_lambda=0.1)
    assert float(penalised) != pytest.approx(float(plain), rel=1e-3)


@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 2.0]])
def test_lade_is_prior_adjusted_cross_entropy_plus_alpha_regulariser(
    weights: list[float] | None,
) -> None:
    logits, targets = _batch(10)
    w = None if weights is None else torch.tensor(weights)
    lade = LOSSES["lade"](COUNTS, alpha=0.1, remine_lambda=0.01).fn(logits, targets, w)
    prior = COUNTS / COUNTS.sum()
    per_sample = [
        _nll([v + math.log(p) for v, p in zip(row, prior, strict=True)], t)
        for row, t in zip(logits.tolist(), targets.tolist(), strict=True)
    ]
    expected = _reference_mean(per_sample, targets.tolist(), weights) + 0.1 * _lade_reference(
        logits.tolist(), targets.tolist(), COUNTS.tolist(), 0.01
    )
    assert float(lade) == pytest.approx(expected, rel=1e-5)
    without = LOSSES["lade"](COUNTS, alpha=0.0, remine_lambda=0.01).fn(logits, targets, w)
    balanced = LOSSES["balanced-softmax"](COUNTS).fn(logits, targets, w)
    assert float(without) == pytest.approx(float(balanced), rel=1e-6)


def test_gcl_cloud_sizes_grow_with_rarity() -> None:
    counts = np.array([50, 20, 5, 5, 1])
    sizes = gcl_cloud_sizes(counts).tolist()
    # (log 50 − log n_j) / (log 50 − log 1): the most frequent class 0, the rarest 1.
    expected = [(math.log(50) - math.log(n)) / math.log(50) for n in counts.tolist()]
    assert sizes == pytest.approx(expected, abs=1e-6)
    assert sizes[0] == 0.0 and sizes[-1] == pytest.approx(1.0)
    generator = np.random.default_rng(0)
    for _ in range(20):
        counts = generator.integers(1, 500, size=6)
        sizes = gcl_cloud_sizes(counts).tolist()
        for i in range(6):
            for j in range(6):
                if counts[i] < counts[j]:
                    assert sizes[i] > sizes[j]
                elif counts[i] == counts[j]:
                    assert sizes[i] == sizes[j]


def test_gcl_without_imbalance_has_no_clouds() -> None:
    assert gcl_cloud_sizes(np.array([7, 7, 7])).tolist() == [0.0, 0.0, 0.0]


def test_gcl_draws_are_half_normal_clipped_at_one() -> None:
    torch.manual_seed(0)
    draws = gcl_draws(torch.empty(400, 500))
    assert draws.shape == (400, 500) and float(draws.min()) >= 0 and float(draws.max()) <= 1
    # E|ε| for ε ~ N(0, 1/3²) is (1/3)·sqrt(2/π) ≈ 0.266 (clipping at 3σ moves it by < 1e-3).
    assert float(draws.mean()) == pytest.approx(math.sqrt(2 / math.pi) / 3, abs=2e-3)


@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 2.0]])
def test_gcl_matches_per_sample_reference(weights: list[float] | None) -> None:
    noise, margin, scale = 0.5, 0.1, 30.0
    built = LOSSES["gcl"](COUNTS, noise=noise, margin=margin, scale=scale)
    assert (built.head, built.head_scale) == ("cosine", 30.0)
    logits, targets = _batch(11)
    torch.manual_seed(3)
    loss = built.fn(logits, targets, None if weights is None else torch.tensor(weights))
    torch.manual_seed(3)  # the same draws, the slow way
    draws = (torch.randn(logits.shape) / 3).clamp(-1, 1).abs().tolist()
    sizes = [(math.log(50) - math.log(n)) / (math.log(50) - math.log(5)) for n in COUNTS.tolist()]
    per_sample = []
    for row, t, eps in zip(logits.tolist(), targets.tolist(), draws, strict=True):
        lowered = [z - scale * noise * e * a for z, e, a in zip(row, eps, sizes, strict=True)]
        lowered[t] -= scale * margin
        per_sample.append(_nll(lowered, t))
    assert float(loss) == pytest.approx(
        _reference_mean(per_sample, targets.tolist(), weights), rel=1e-5
    )


def test_gcl_without_noise_is_the_plain_margin_loss() -> None:
    logits, targets = _batch(12)
    margin = LOSSES["gcl"](COUNTS, noise=0.0, margin=0.1, scale=30.0).fn(logits, targets, None)
    same_margins = margin_cross_entropy(logits, targets, margins=torch.full((3,), 30.0 * 0.1))
    assert float(margin) == pytest.approx(float(same_margins), rel=1e-6)
    plain = LOSSES["gcl"](COUNTS, noise=0.0, margin=0.0, scale=30.0).fn(logits, targets, None)
    assert float(plain) == pytest.approx(float(LOSSES["ce"](COUNTS).fn(logits, targets, None)))


def test_gcl_clouds_make_rare_samples_harder_and_frequent_ones_easier() -> None:
    # Two classes, counts (100, 1): only the rare class's logit is ever lowered, so every draw
    # raises the loss of a rare-class sample and lowers that of a frequent-class one.
    counts, logits = np.array([100, 1]), torch.zeros(1000, 2)
    clouded = LOSSES["gcl"](counts, noise=0.5, margin=0.0, scale=30.0).fn
    rare, frequent = torch.ones(1000, dtype=torch.long), torch.zeros(1000, dtype=torch.long)
    torch.manual_seed(4)
    assert float(clouded(logits, rare, None)) > math.log(2) > float(clouded(logits, frequent, None))
