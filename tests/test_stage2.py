"""Stage-2 methods on hand-built features: formulas, fitting, and choices made on val only."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from bench.components.catalogue import STAGE2_METHODS
from bench.components.losses import log_prior
from bench.stage2.feature_sources import CachedFeatures
from bench.stage2.methods import (
    TAU_GRID,
    AlignedHead,
    HeadWeights,
    Stage2Context,
    generalised_reweighting,
    label_aware_loss,
    label_smoothing_factors,
    logit_adjustment,
    max_norm_radius,
    project_max_norm,
    schedule_steps,
    smoothed_targets,
    tau_norm,
)

CPU = torch.device("cpu")


def _context(
    splits: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    head: HeadWeights,
    counts: list[int],
) -> Stage2Context:
    source = CachedFeatures(splits, splits["train"], labels["train"])
    return Stage2Context(source, labels, head, np.array(counts), seed=0, device=CPU)


def _tau_case() -> Stage2Context:
    # Class 0 has a long weight vector (frequent class), class 1 a short one. Point (1, 1)
    # goes to class 0 at τ = 0 (score 2 vs 1) and to class 1 once τ ≥ 0.5 or so.
    head = HeadWeights(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), None)
    point = torch.tensor([[1.0, 1.0]])
    splits = {"train": point, "val": point, "test": point}
    return _context(
        splits,
        {"train": torch.tensor([0]), "val": torch.tensor([0]), "test": torch.tensor([1])},
        head,
        [10, 2],
    )


def test_tau_is_picked_on_val_although_test_labels_would_pick_otherwise() -> None:
    outcome = tau_norm(_tau_case())
    assert outcome.choices["tau"] == 0.0  # val label 0 prefers no normalisation
    # Under test labels, τ = 0 scores worst: the pick did not look at them.
    assert outcome.logits["test"].argmax(1).item() == 0
    expected = torch.tensor([[2.0, 1.0]])
    assert torch.allclose(outcome.logits["test"], expected)


def test_tau_norm_formula_at_the_first_tau_that_flips_the_point() -> None:
    # Class 0 scores 2 / 2^τ, class 1 scores 1: class 1 wins strictly from τ = 1.1.
    context = _tau_case()
    flipped = _context(
        {name: context.source.split(name) for name in ("train", "val", "test")},
        {"train": torch.tensor([0]), "val": torch.tensor([1]), "test": torch.tensor([1])},
        context.head,
        [10, 2],
    )
    outcome = tau_norm(flipped)
    assert outcome.choices["tau"] == 1.1
    assert outcome.logits["val"].tolist()[0] == pytest.approx([2 / 2**1.1, 1.0])
    scores = outcome.choices["val_balanced_accuracy_by_tau"]
    assert list(scores) == list(TAU_GRID)
    assert [t for t, v in scores.items() if v == 1.0] == [t for t in TAU_GRID if t >= 1.1]


def test_logit_adjustment_tau_is_picked_on_val() -> None:
    head = HeadWeights(torch.eye(2), torch.zeros(2))
    point = torch.tensor([[1.0, 0.5]])  # raw logits (1, 0.5): class 0 wins without adjustment
    counts = [90, 10]  # log prior gap ≈ 2.2: τ ≥ 0.3 flips the point to class 1
    splits = {"train": point, "val": point, "test": point}
    val_wants_1 = _context(
        splits,
        {"train": torch.tensor([0]), "val": torch.tensor([1]), "test": torch.tensor([0])},
        head,
        counts,
    )
    outcome = logit_adjustment(val_wants_1)
    tau = outcome.choices["tau"]
    assert tau == 0.3
    expected = point - tau * log_prior(np.array(counts))
    assert torch.allclose(outcome.logits["test"], expected)
    assert outcome.logits["test"].argmax(1).item() == 1  # wrong for test: it was not consulted


def test_nearest_class_mean_hand_computed() -> None:
    train = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    query = torch.tensor([[3.0, 4.0]])
    splits = {"train": train, "val": query, "test": query}
    labels = {"train": torch.tensor([0, 0, 1]), "val": torch.tensor([1]), "test": torch.tensor([1])}
    head = HeadWeights(torch.eye(2), None)
    outcome = STAGE2_METHODS["ncm"](_context(splits, labels, head, [2, 1]))
    # Means of normalised features: (1, 0) and (0, 1); query normalised (0.6, 0.8).
    assert outcome.logits["test"].flatten().tolist() == pytest.approx([0.6, 0.8])


def _blobs(
    n_per_class: list[int], seed: int, spread: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[3.0, 0.0], [0.0, 3.0], [-3.0, -3.0]])
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    return centres[labels] + spread * torch.randn(len(labels), 2, generator=generator), labels


def test_crt_learns_a_balanced_head_from_scratch() -> None:
    train, train_labels = _blobs([200, 20, 5], 0)
    val, val_labels = _blobs([20, 20, 20], 1)
    test, test_labels = _blobs([20, 20, 20], 2)
    context = _context(
        {"train": train, "val": val, "test": test},
        {"train": train_labels, "val": val_labels, "test": test_labels},
        HeadWeights(torch.zeros(3, 2), torch.zeros(3)),
        [200, 20, 5],
    )
    outcome = STAGE2_METHODS["crt"](context, epochs=10, min_steps=100, lr=0.1, batch_size=32)
    accuracy = (outcome.logits["test"].argmax(1) == test_labels).float().mean()
    assert accuracy > 0.9 and outcome.choices["steps"] == 100  # 10 epochs of 7 steps < 100
    assert outcome.choices["final_train_loss"] < 0.5
    again = STAGE2_METHODS["crt"](context, epochs=10, min_steps=100, lr=0.1, batch_size=32)
    assert torch.equal(outcome.logits["test"], again.logits["test"])


@pytest.mark.parametrize(
    ("rows", "batch", "epochs", "min_steps", "expected"),
    [(1000, 100, 10, 50, 100), (220, 128, 10, 2000, 2000), (50, 128, 10, 0, 10)],
)
def test_head_fits_take_epochs_of_steps_but_at_least_min_steps(
    rows: int, batch: int, epochs: int, min_steps: int, expected: int
) -> None:
    assert schedule_steps(rows, batch, epochs, min_steps) == expected


def test_a_fit_of_few_steps_records_its_last_loss() -> None:
    train, train_labels = _blobs([20, 10, 5], 0)
    context = _context(
        {"train": train, "val": train, "test": train},
        {"train": train_labels, "val": train_labels, "test": train_labels},
        HeadWeights(torch.zeros(3, 2), torch.zeros(3)),
        [20, 10, 5],
    )
    for steps in (1, 3, 19):
        outcome = STAGE2_METHODS["crt"](context, epochs=0, min_steps=steps, batch_size=8)
        assert outcome.choices["steps"] == steps
        assert 0 < outcome.choices["final_train_loss"] < 5


def _separable_imbalanced() -> tuple[Stage2Context, torch.Tensor]:
    """Three well-separated classes, 200 : 20 : 5 in training and balanced in val and test,
    under a stage-1 head biased towards class 0: the rare class 1 scores 1.5 where class 0
    scores 3, so the head misses every class-1 point until class 1 is scaled up about 2×."""
    train, train_labels = _blobs([200, 20, 5], 0, spread=0.3)
    val, val_labels = _blobs([30, 30, 30], 1, spread=0.3)
    test, test_labels = _blobs([30, 30, 30], 2, spread=0.3)
    head = HeadWeights(torch.tensor([[2.0, 1.0], [0.0, 0.5], [-0.3, -0.3]]), None)
    context = _context(
        {"train": train, "val": val, "test": test},
        {"train": train_labels, "val": val_labels, "test": test_labels},
        head,
        [200, 20, 5],
    )
    return context, test_labels


def _balanced_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    predicted = logits.argmax(1)
    return float(np.mean([(predicted[labels == c] == c).float().mean() for c in range(3)]))


def test_crt_reaches_the_balanced_optimum_on_separable_imbalanced_features() -> None:
    context, test_labels = _separable_imbalanced()
    assert _balanced_accuracy(context.head.logits(context.source.split("test")), test_labels) < 0.7
    outcome = STAGE2_METHODS["crt"](context, epochs=10, min_steps=500, lr=0.05, batch_size=32)
    assert _balanced_accuracy(outcome.logits["test"], test_labels) == 1.0
    assert outcome.choices["val_balanced_accuracy"] == 1.0


def test_lws_scales_the_rare_classes_up_and_stays_positive() -> None:
    context, test_labels = _separable_imbalanced()
    outcome = STAGE2_METHODS["lws"](context, epochs=10, min_steps=500, lr=0.5, batch_size=32)
    scales = outcome.choices["scales"]
    assert all(s > 0 for s in scales)
    assert scales[1] > 2 * scales[0]  # class 1 needs about twice class 0's scale
    # Scaling alone cannot move the frozen boundaries' directions: close to, not at, 1.
    assert _balanced_accuracy(outcome.logits["test"], test_labels) > 0.95


def test_lws_scales_stay_positive_where_the_loss_asks_for_a_negative_one() -> None:
    # Class 2's stage-1 weight points away from its points: the loss would turn its logit
    # around with a negative scale, which exp(v) cannot give.
    context, _ = _separable_imbalanced()
    inverted = HeadWeights(torch.tensor([[2.0, 1.0], [0.0, 0.5], [0.3, 0.3]]), None)
    outcome = STAGE2_METHODS["lws"](
        dataclasses.replace(context, head=inverted), epochs=10, min_steps=300, lr=0.5, batch_size=32
    )
    scales = outcome.choices["scales"]
    assert all(0 < s < float("inf") for s in scales) and scales[2] < 0.1


def test_lws_only_rescales_the_frozen_head() -> None:
    train, train_labels = _blobs([200, 20, 5], 0)
    val, val_labels = _blobs([20, 20, 20], 1)
    weight, bias = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]), torch.tensor([0.5, 0, -1])
    context = _context(
        {"train": train, "val": val, "test": val},
        {"train": train_labels, "val": val_labels, "test": val_labels},
        HeadWeights(weight, bias),
        [200, 20, 5],
    )
    outcome = STAGE2_METHODS["lws"](context, epochs=5, min_steps=50, lr=0.1, batch_size=32)
    scales = torch.tensor(outcome.choices["scales"])
    assert torch.allclose(outcome.logits["test"], scales * (val @ weight.T) + bias, atol=1e-5)


def test_finetune_bn_updates_batch_norm_statistics_but_no_weight() -> None:
    from bench.components.models import build_classifier
    from bench.stage1.augment import Normalizer
    from bench.stage2.feature_sources import BatchNormFinetuning

    torch.manual_seed(0)
    model = build_classifier("resnet-compact", 3)
    images = torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8)
    source = BatchNormFinetuning(
        model,
        {"train": images, "val": images, "test": images},
        torch.zeros(16, dtype=torch.long),
        Normalizer.fit(images),
        CPU,
        seed=0,
    )
    weights = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if "running" not in k and "num_batches" not in k
    }
    before = model.backbone.state_dict()["body.1.running_mean"].clone()
    features = source.train_batch(torch.arange(8))
    assert features.shape == (8, 64) and not features.requires_grad
    assert not torch.equal(before, model.backbone.state_dict()["body.1.running_mean"])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())


def test_a_diverging_head_fit_stops_as_failed() -> None:
    from bench.core.errors import TrainingDiverged

    context, _ = _separable_imbalanced()
    with pytest.raises(TrainingDiverged, match="stage 2 diverged"):
        STAGE2_METHODS["crt"](context, epochs=1, min_steps=50, lr=1e30, batch_size=32)


@pytest.mark.parametrize(
    "head",
    [
        HeadWeights(
            torch.tensor([[1.0, -2.0], [0.5, 0.5], [-1.0, 3.0]]), torch.tensor([0.3, 0, -1])
        ),
        HeadWeights(torch.tensor([[1.0, -2.0], [0.5, 0.5], [-1.0, 3.0]]), None, "cosine", 30.0),
    ],
    ids=["linear", "cosine"],
)
def test_disalign_calibration_is_the_identity_at_initialisation(head: HeadWeights) -> None:
    torch.manual_seed(0)
    aligned = AlignedHead(head, CPU)
    features = 3 * torch.randn(50, 2)
    with torch.no_grad():  # whatever the confidence: the logits are the stage-1 head's
        assert torch.equal(aligned(features), head.logits(features))
        aligned.confidence.weight.normal_()
        aligned.confidence.bias.normal_()
        assert torch.equal(aligned(features), head.logits(features))


def test_disalign_calibration_follows_the_paper_formula() -> None:
    # s_j = σ(x)·(α_j z_j + β_j) + (1 − σ(x))·z_j, σ(x) = sigmoid(v·x + c), one sample at a time.
    head = HeadWeights(torch.tensor([[1.0, -2.0], [0.5, 0.5]]), torch.tensor([0.3, -1.0]))
    aligned = AlignedHead(head, CPU)
    with torch.no_grad():
        aligned.magnitude.copy_(torch.tensor([0.5, -0.25]))  # α = 1.5, 0.75
        aligned.margin.copy_(torch.tensor([-1.0, 2.0]))
        aligned.confidence.weight.copy_(torch.tensor([[0.4, -0.2]]))
        aligned.confidence.bias.fill_(0.1)
        features = torch.tensor([[1.0, 2.0], [-3.0, 0.5], [0.0, 0.0]])
        got = aligned(features)
    alpha, beta = [1.5, 0.75], [-1.0, 2.0]
    for i, (x0, x1) in enumerate(features.tolist()):
        sigma = 1 / (1 + math.exp(-(0.4 * x0 - 0.2 * x1 + 0.1)))
        z = [x0 - 2 * x1 + 0.3, 0.5 * x0 + 0.5 * x1 - 1.0]
        expected = [sigma * (alpha[j] * z[j] + beta[j]) + (1 - sigma) * z[j] for j in range(2)]
        assert got[i].tolist() == pytest.approx(expected, abs=1e-6)


def test_generalised_reweighting_weights_by_hand() -> None:
    # w_j ∝ (1 / r_j)^ρ, r_j = n_j / 111; normalised to sum to 3: ∝ 100^−1.2, 10^−1.2, 1.
    weights = generalised_reweighting(np.array([100, 10, 1]), 1.2)
    assert weights.tolist() == pytest.approx([0.0111925, 0.1773885, 2.8114190], abs=1e-6)
    assert generalised_reweighting(np.array([100, 10, 1]), 0.0).tolist() == [1.0, 1.0, 1.0]


def test_disalign_recalibrates_a_head_biased_towards_the_frequent_class() -> None:
    context, test_labels = _separable_imbalanced()
    before = _balanced_accuracy(context.head.logits(context.source.split("test")), test_labels)
    outcome = STAGE2_METHODS["disalign"](context, epochs=10, min_steps=500, lr=0.05, batch_size=32)
    weights = generalised_reweighting(np.array([200, 20, 5]), 1.2)
    assert outcome.choices["class_weights"] == pytest.approx(weights.tolist(), abs=1e-6)
    assert before < 0.7 < 0.95 < _balanced_accuracy(outcome.logits["test"], test_labels)
    assert outcome.choices["steps"] == 500 and len(outcome.choices["margins"]) == 3


def test_max_norm_projection_matches_a_row_by_row_reference() -> None:
    weight = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))  # norms 0.9 to 2.6
    expected = []
    for row in weight.tolist():
        norm = math.sqrt(sum(v * v for v in row))
        expected.append([v * 1.5 / norm for v in row] if norm > 1.5 else row)
    projected = weight.clone()
    project_max_norm(projected, 1.5)
    assert projected.tolist() == [pytest.approx(row, abs=1e-6) for row in expected]
    assert 0 < sum(1 for row in weight if row.norm() <= 1.5) < 6  # some rows left alone


def test_the_max_norm_radius_is_set_between_the_stage1_norms() -> None:
    weight = torch.tensor([[2.0, 1.0], [0.0, 0.5], [-0.3, -0.3]])  # norms √5, 0.5, √0.18
    assert max_norm_radius(weight, 0.1) == pytest.approx(0.424264 + 0.1 * (2.236068 - 0.424264))
    assert max_norm_radius(weight, 0.0) == pytest.approx(0.424264, abs=1e-6)
    assert max_norm_radius(weight, 1.0) == pytest.approx(2.236068, abs=1e-6)


@pytest.mark.parametrize("threshold", [0.1, 1.0])
def test_weight_balancing_bounds_every_class_norm_and_weights_by_effective_number(
    threshold: float,
) -> None:
    context, test_labels = _separable_imbalanced()
    radius = max_norm_radius(context.head.weight, threshold)
    outcome = STAGE2_METHODS["weight-balancing"](
        context, threshold=threshold, beta=0.9, min_steps=300
    )
    assert outcome.choices["max_norm"] == pytest.approx(radius, abs=1e-6)
    assert max(outcome.choices["weight_norms"]) <= radius + 1e-5
    # (1 − β) / (1 − β^n) for n = 200, 20, 5 at β = 0.9: 0.1 / (≈1, 0.878423, 0.409510),
    # normalised to sum to 3.
    weights = [0.654972, 0.745623, 1.599405]
    assert outcome.choices["class_weights"] == pytest.approx(weights, abs=1e-5)
    assert _balanced_accuracy(outcome.logits["test"], test_labels) > 0.95


def test_weight_balancing_fine_tunes_the_stage1_head_rather_than_a_fresh_one() -> None:
    # One step at a vanishing learning rate, with a radius (threshold 1: the longest stage-1
    # class weight) that clips nothing: the head is still the stage-1 head it started from.
    context, _ = _separable_imbalanced()
    outcome = STAGE2_METHODS["weight-balancing"](
        context, threshold=1.0, lr=1e-6, weight_decay=0.0, epochs=0, min_steps=1
    )
    expected = context.head.logits(context.source.split("test"))
    assert torch.allclose(outcome.logits["test"], expected, atol=1e-4)


@pytest.mark.parametrize(
    ("shape", "middle"),
    # The middle class sits 15/195 of the way from the rarest count to the most frequent:
    # 0.3·sin(π/2·15/195), 0.3·15/195, 0.3·(1 − cos(π/2·15/195)).
    [("concave", 0.0361610), ("linear", 0.0230769), ("convex", 0.0021874)],
)
def test_label_aware_smoothing_is_larger_for_head_classes(shape: str, middle: float) -> None:
    counts = np.array([20, 200, 5])  # the classes in no particular order of frequency
    smoothing = label_smoothing_factors(counts, 0.3, 0.0, shape)
    assert smoothing.tolist() == pytest.approx([middle, 0.3, 0.0], abs=1e-6)
    assert smoothing[1] > smoothing[0] > smoothing[2]
    equal = label_smoothing_factors(np.array([7, 7, 7]), 0.3, 0.1, shape)
    assert equal.tolist() == pytest.approx([0.3] * 3)  # no tail: every class is the head


def test_label_aware_targets_are_distributions_with_the_class_smoothing() -> None:
    smoothing = label_smoothing_factors(np.array([20, 200, 5, 50]), 0.4, 0.1, "concave")
    labels = torch.tensor([0, 1, 2, 3, 1])
    targets = smoothed_targets(labels, smoothing, 4)
    assert torch.allclose(targets.sum(1), torch.ones(5)) and (targets >= 0).all()
    on_label = targets[torch.arange(5), labels]
    assert torch.allclose(on_label, 1 - smoothing[labels])
    off_label = targets[1, [0, 2, 3]]  # a head-class image: ε_1 / (K − 1) on each other class
    assert torch.allclose(off_label, torch.full((3,), 0.4 / 3))


def test_label_aware_loss_matches_a_per_sample_reference() -> None:
    generator = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(6, 3, generator=generator), torch.tensor([0, 1, 2, 2, 1, 0])
    smoothing = torch.tensor([0.3, 0.1, 0.0])
    expected = 0.0
    for row, label in zip(logits.tolist(), labels.tolist(), strict=True):
        log_norm = math.log(sum(math.exp(v) for v in row))
        epsilon = smoothing[label].item()
        q = [1 - epsilon if j == label else epsilon / 2 for j in range(3)]
        expected -= sum(q[j] * (row[j] - log_norm) for j in range(3)) / len(labels)
    assert label_aware_loss(smoothing)(logits, labels).item() == pytest.approx(expected, abs=1e-6)
    plain = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(label_aware_loss(torch.zeros(3))(logits, labels), plain)


def test_label_aware_smoothing_at_zero_is_crt() -> None:
    context, _ = _separable_imbalanced()
    schedule = {"epochs": 10, "min_steps": 300, "lr": 0.05, "batch_size": 32}
    crt = STAGE2_METHODS["crt"](context, **schedule)
    smoothed = STAGE2_METHODS["label-aware-smoothing"](
        context, smooth_head=0.0, smooth_tail=0.0, **schedule
    )
    assert torch.equal(smoothed.logits["test"], crt.logits["test"])
    assert smoothed.choices["smoothing"] == [0.0, 0.0, 0.0]
    default = STAGE2_METHODS["label-aware-smoothing"](context, **schedule)
    assert default.choices["smoothing"] == pytest.approx([0.3, 0.036161, 0.0], abs=1e-6)
    # Smoothing the frequent class's targets lowers its confidence more than cRT does.
    confidence = {
        name: torch.softmax(outcome.logits["test"], 1)[:, 0].max().item()
        for name, outcome in (("crt", crt), ("smoothed", default))
    }
    assert confidence["smoothed"] < confidence["crt"]


def test_mislas_shifts_batch_norm_while_it_retrains_the_head() -> None:
    from bench.components.models import build_classifier
    from bench.recipes.methods import MethodRegistry
    from bench.stage1.augment import Normalizer
    from bench.stage2.feature_sources import BatchNormFinetuning

    assert MethodRegistry().get("ce+mislas").stage2.mode == "finetune-bn"
    torch.manual_seed(0)
    model = build_classifier("resnet-compact", 3)
    images = torch.randint(0, 256, (24, 3, 16, 16), dtype=torch.uint8)
    labels = torch.arange(24) % 3
    source = BatchNormFinetuning(
        model,
        {"train": images, "val": images, "test": images},
        labels,
        Normalizer.fit(images),
        CPU,
        seed=0,
    )
    head = HeadWeights(model.head.weight.detach(), model.head.bias.detach())
    context = Stage2Context(
        source, {"train": labels, "val": labels}, head, np.array([8, 8, 8]), 0, CPU
    )
    before = model.backbone.state_dict()["body.1.running_mean"].clone()
    outcome = STAGE2_METHODS["label-aware-smoothing"](context, epochs=0, min_steps=3, batch_size=8)
    assert not torch.equal(before, model.backbone.state_dict()["body.1.running_mean"])
    assert outcome.choices["steps"] == 3 and outcome.logits["test"].shape == (24, 3)
