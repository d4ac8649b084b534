"""Each loss and weighting against a per-sample reference loop or hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.components.catalogue import LOSSES
from bench.components.losses import ldam_margins, log_prior, vs_scales
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
