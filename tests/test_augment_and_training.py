"""Batched augmentation, the optimisation schedule and the optimiser's parameter groups."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.components.losses import build_ce, cross_entropy
from bench.components.models import build_classifier
from bench.components.samplers import instance_order
from bench.components.settings import TrainingSettings
from bench.core.errors import BenchError
from bench.recipes.methods import parse_recipe
from bench.stage1.augment import Augment, Mixup, Normalizer, StrongAugment
from bench.stage1.job import build_objective
from bench.stage1.schedule import lr_at
from bench.stage1.training import Objective, Training, build_optimizer, train_stage1

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


@pytest.mark.parametrize("strong", [False, True])
def test_a_fixed_orientation_is_never_flipped_and_barely_rotated(strong: bool) -> None:
    kind = StrongAugment if strong else Augment
    fixed = kind.for_orientation("fixed")
    assert not fixed.flips and fixed.max_rotation_deg <= 10
    # An image whose left half is bright: a flip or a half turn would put the light on the right.
    images = torch.zeros(64, 3, 16, 16, dtype=torch.uint8)
    images[..., :8] = 255
    if not strong:  # no zoom, shift or jitter: the warp alone
        fixed = dataclasses.replace(fixed, scale=(1.0, 1.0), max_shift=0.0, brightness=0.0,
                                    contrast=0.0, saturation=0.0)  # fmt: skip
    out = fixed(images, torch.Generator().manual_seed(0))
    left, right = out[..., :4].mean((1, 2, 3)), out[..., -4:].mean((1, 2, 3))
    assert bool((left > right).all())
    free = kind.for_orientation("free")
    assert free == kind()  # the defaults: free orientation keeps its records and results
    flipped = free(images, torch.Generator().manual_seed(0))
    assert bool((flipped[..., :4].mean((1, 2, 3)) < flipped[..., -4:].mean((1, 2, 3))).any())


def test_only_a_fixed_orientation_is_recorded() -> None:
    assert "orientation" not in TrainingSettings().as_dict()
    assert TrainingSettings(orientation="fixed").as_dict()["orientation"] == "fixed"
    assert "flips" not in Augment().as_dict()
    assert Augment.for_orientation("fixed").as_dict()["flips"] is False


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


def _optimizer_of(recipe_text: str, tmp_path: Path) -> torch.optim.Optimizer:
    path = tmp_path / "m.toml"
    path.write_text('description = "x"\n[loss]\nname = "ce"\n' + recipe_text)
    recipe = parse_recipe(path)
    counts = np.array([10, 5, 3])
    objective = build_objective(recipe, counts, epochs=4)
    model = build_classifier("resnet-compact", 3, embedding_dim=recipe.metric.embedding_dim)
    return build_optimizer(model, objective, TrainingSettings(lr=0.2, weight_decay=1e-3))


def test_proxy_anchor_proxies_learn_100_times_faster_by_default(tmp_path: Path) -> None:
    optimizer = _optimizer_of('[metric]\nname = "proxy-anchor"\n', tmp_path)
    network, proxies = optimizer.param_groups
    assert network["lr_multiplier"] == 1.0 and proxies["lr_multiplier"] == 100.0
    assert proxies["weight_decay"] == network["weight_decay"] == 1e-3
    assert len(proxies["params"]) == 1 and proxies["params"][0].shape == (3, 128)


def test_a_recipe_sets_the_multiplier_and_drops_weight_decay_of_loss_parameters(
    tmp_path: Path,
) -> None:
    text = '[metric]\nname = "centre-triplet"\ncentres = "learned"\nlr_multiplier = 10.0\n'
    optimizer = _optimizer_of(text + "weight_decay = false\n", tmp_path)
    _, centres = optimizer.param_groups
    assert centres["lr_multiplier"] == 10.0 and centres["weight_decay"] == 0
    # Loss parameters take their multiple of the scheduled rate at every step.
    model = build_classifier("resnet-compact", 3, embedding_dim=128)
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    path = tmp_path / "m.toml"
    path.write_text('description = "x"\n[loss]\nname = "ce"\n' + text)
    objective = build_objective(parse_recipe(path), np.array([3, 3, 2]), epochs=1)
    seen: list[list[float]] = []
    real_step = torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        seen.append([group["lr"] for group in self.param_groups])
        return real_step(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.optim.SGD, "step", recording_step)
        settings = TrainingSettings(epochs=1, batch_size=4, lr=0.2, warmup_epochs=0, min_steps=0)
        data = (images, labels)
        cpu = torch.device("cpu")
        train_stage1(Training(model, data, data, objective, settings, cpu, progress=False))
    assert seen and all(centre == pytest.approx(10 * net) for net, centre in seen)


def test_metric_term_optimiser_fields_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('description = "x"\n[loss]\nname = "ce"\n[metric]\nname = "supcon"\n')
    assert parse_recipe(path).metric.lr_multiplier == 1.0  # 1 for losses without a paper value
    path.write_text(path.read_text() + "lr_multiplier = 0\n")
    with pytest.raises(
        BenchError, match=r"'lr_multiplier' = 0\.0 is out of range; use a finite value > 0"
    ):
        parse_recipe(path)
    path.write_text(path.read_text().replace("= 0\n", "= 2\nweight_decay = 1\n"))
    with pytest.raises(BenchError, match="'weight_decay' must be true or false, got 1"):
        parse_recipe(path)
    path.write_text(
        path.read_text().replace("= 2\nweight_decay = 1\n", "= 2\nembedding_dim = 1.5\n")
    )
    with pytest.raises(BenchError, match=r"'embedding_dim' must be an integer, got 1\.5"):
        parse_recipe(path)


QUIET_STRONG = StrongAugment(
    crop_area=(1, 1),
    crop_aspect=(1, 1),
    max_rotation_deg=0,
    jitter_probability=0,
    greyscale_probability=0,
)


def test_strong_augmentation_at_zero_strength_only_flips() -> None:
    images = _images()
    out = QUIET_STRONG(images, torch.Generator().manual_seed(0))
    candidates = [images, images.flip(-1), images.flip(-2), images.flip(-1).flip(-2)]
    for k in range(len(images)):
        assert min(float((out[k] - c[k].float()).abs().max()) for c in candidates) < 1e-3


def test_strong_augmentation_is_deterministic_in_range_and_crops() -> None:
    images = _images()
    first = StrongAugment()(images, torch.Generator().manual_seed(3))
    assert torch.equal(first, StrongAugment()(images, torch.Generator().manual_seed(3)))
    assert first.shape == images.shape and first.min() >= 0 and first.max() <= 255
    assert not torch.allclose(first, StrongAugment()(images, torch.Generator().manual_seed(4)))
    # A quarter-area crop of a left-dark, right-bright image is darker or brighter as a whole
    # than the image, by where it falls: the crop is resized to the full image.
    halves = torch.zeros(64, 3, 16, 16, dtype=torch.uint8)
    halves[..., 8:] = 255
    cropped = dataclasses.replace(QUIET_STRONG, crop_area=(0.25, 0.25))
    means = cropped(halves, torch.Generator().manual_seed(0)).mean((1, 2, 3))
    assert means.min() < 40 and means.max() > 215


def test_greyscale_and_hue_jitter_of_the_strong_augmentation() -> None:
    images = torch.randint(100, 156, (6, 3, 16, 16), generator=torch.Generator().manual_seed(1))
    grey = dataclasses.replace(QUIET_STRONG, greyscale_probability=1.0)
    out = grey(images.to(torch.uint8), torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
    # Hue turns the chroma plane: colours change, luma does not (no clipping at mid-range).
    hue = dataclasses.replace(QUIET_STRONG, jitter=0.0, hue=0.5, jitter_probability=1.0)
    turned = hue(images.to(torch.uint8), torch.Generator().manual_seed(0))
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    before, after = (images.float() * luma).sum(1), (turned * luma).sum(1)
    flips = [before, before.flip(-1), before.flip(-2), before.flip(-1).flip(-2)]
    colours = [images, images.flip(-1), images.flip(-2), images.flip(-1).flip(-2)]
    for k in range(len(images)):  # the only geometry left is a flip
        assert min(float((after[k] - flip[k]).abs().max()) for flip in flips) < 1e-3
        assert min(float((turned[k] - c[k].float()).abs().max()) for c in colours) > 5


def test_the_geometric_augmentation_crops_as_the_strong_one_and_keeps_every_colour() -> None:
    # A uniform colour per image: any crop, flip or rotation leaves it; colour distortion not.
    colours = torch.randint(30, 220, (32, 3, 1, 1), generator=torch.Generator().manual_seed(2))
    images = colours.expand(32, 3, 16, 16).to(torch.uint8).contiguous()
    geometric = StrongAugment.geometric("free")
    out = geometric(images, torch.Generator().manual_seed(5))
    centre = out[..., 6:10, 6:10]  # away from the border that a rotation fills
    assert torch.allclose(centre, colours.float().expand_as(centre), atol=1e-3)
    strong = StrongAugment.for_orientation("free")(images, torch.Generator().manual_seed(5))
    assert (strong[..., 6:10, 6:10] - colours.float()).abs().amax() > 20
    # The same draws as `strong` (one stream): at zero jitter the geometry is the same.
    halves = torch.zeros(8, 3, 16, 16, dtype=torch.uint8)
    halves[..., 8:] = 255
    still = dataclasses.replace(StrongAugment(), jitter_probability=0.0, greyscale_probability=0.0)
    assert torch.equal(
        geometric(halves, torch.Generator().manual_seed(9)),
        still(halves, torch.Generator().manual_seed(9)),
    )
    assert StrongAugment.geometric("fixed").flips is False


class _Recorder(torch.nn.Module):
    """A metric term that records what it is given and adds nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.seen.append((embeddings.detach(), labels))
        return embeddings.sum() * 0


def _tiny_training(objective: Objective, labels: torch.Tensor | None = None) -> Training:
    images = torch.randint(
        0, 256, (8, 3, 16, 16), generator=torch.Generator().manual_seed(5), dtype=torch.uint8
    )
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]) if labels is None else labels
    torch.manual_seed(0)
    model = build_classifier("resnet-compact", 3, embedding_dim=8)
    settings = TrainingSettings(epochs=1, batch_size=4, lr=0.1, warmup_epochs=0, min_steps=0)
    data = (images, labels)
    return Training(model, data, data, objective, settings, torch.device("cpu"), progress=False)


def test_views_are_stacked_view_after_view_with_their_labels() -> None:
    recorder = _Recorder()
    objective = Objective(build_ce(np.array([3, 3, 2])), instance_order, metric=recorder, views=2)
    train_stage1(_tiny_training(objective))
    assert len(recorder.seen) == 2  # two batches of four images
    for embeddings, labels in recorder.seen:
        assert embeddings.shape == (8, 8)
        assert torch.equal(labels[:4], labels[4:])  # the second view of each image, in order
        assert not torch.allclose(embeddings[:4], embeddings[4:])  # differently augmented


def _trained_state(recipe_text: str, tmp_path: Path) -> dict[str, torch.Tensor]:
    path = tmp_path / "m.toml"
    path.write_text('description = "x"\n[loss]\nname = "ce"\n' + recipe_text)
    objective = build_objective(parse_recipe(path), np.array([3, 3, 2]), epochs=1)
    training = _tiny_training(objective)
    return train_stage1(training).model.state_dict()


def test_mixup_at_alpha_zero_is_plain_training_to_the_bit(tmp_path: Path) -> None:
    plain = _trained_state("", tmp_path)
    unmixed = _trained_state("[augment]\nmixup_alpha = 0.0\n", tmp_path)
    mixed = _trained_state("[augment]\nmixup_alpha = 0.4\n", tmp_path)
    assert all(torch.equal(plain[k], unmixed[k]) for k in plain)
    assert not all(torch.equal(plain[k], mixed[k]) for k in plain)


def test_mixup_blends_images_and_losses_with_one_lambda() -> None:
    mixup = Mixup(0.3, torch.tensor([1, 0, 2]))
    batch = torch.tensor([[0.0], [10.0], [4.0]])
    assert mixup.images(batch).flatten().tolist() == pytest.approx([7.0, 3.0, 4.0])
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    targets = torch.tensor([0, 1, 1])
    expected = 0.3 * F.cross_entropy(logits, targets) + 0.7 * F.cross_entropy(
        logits, torch.tensor([1, 0, 1])
    )
    assert float(mixup.loss(cross_entropy, logits, targets, None)) == pytest.approx(float(expected))
    # λ ~ Beta(α, α): symmetric about 1/2, variance 1 / (4(2α + 1)).
    draws = [
        Mixup.draw(0.2, 3, rng, torch.Generator()).lam
        for rng in [np.random.default_rng(0)]
        for _ in range(4000)
    ]
    assert np.mean(draws) == pytest.approx(0.5, abs=0.02)
    assert np.var(draws) == pytest.approx(1 / (4 * 1.4), rel=0.05)
