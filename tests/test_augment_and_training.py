"""Batched augmentation, the optimisation schedule and the optimiser's parameter groups."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.components.models import build_classifier
from bench.components.settings import TrainingSettings
from bench.core.errors import BenchError
from bench.recipes.methods import parse_recipe
from bench.stage1.augment import Augment, Normalizer
from bench.stage1.job import build_objective
from bench.stage1.schedule import lr_at
from bench.stage1.training import Training, build_optimizer, train_stage1

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
