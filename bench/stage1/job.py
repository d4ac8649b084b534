"""Stage 1: build the objective and network a recipe describes, train it, keep the artefact."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from bench.components.catalogue import LOSSES, METRIC_LOSSES, SAMPLERS, WEIGHTINGS
from bench.components.models import Classifier, build_classifier
from bench.components.settings import TrainingSettings
from bench.core.claims import wait_for_claim
from bench.data.imageset import ImageSet
from bench.data.split import Split
from bench.recipes.methods import Recipe
from bench.stage1.artefacts import ArtefactCache, Stage1Artefact
from bench.stage1.augment import AUGMENTATIONS, Augment, Normalizer
from bench.stage1.schedule import Schedule
from bench.stage1.training import Objective, Training, predict, train_stage1

SPLIT_NAMES = ("train", "val", "test")


def build_objective(recipe: Recipe, counts: Any, epochs: int) -> Objective:
    """The loss, class weights, sampler, metric term, views and mixup of a stage-1 recipe."""
    weights = (
        WEIGHTINGS[recipe.weighting.name](counts, **recipe.weighting.params)
        if recipe.weighting
        else None
    )
    metric = None
    if recipe.metric:
        metric = METRIC_LOSSES[recipe.metric.loss.name](
            counts, recipe.metric.embedding_dim, **recipe.metric.loss.params
        )
    return Objective(
        loss=LOSSES[recipe.loss.name](counts, **recipe.loss.params),
        sampler=functools.partial(SAMPLERS[recipe.sampler.name], **recipe.sampler.params),
        class_weights=weights,
        weights_from_epoch=round(recipe.weighting_start * epochs),
        metric=metric,
        metric_weight=recipe.metric.weight if recipe.metric else 0.0,
        metric_lr_multiplier=recipe.metric.lr_multiplier if recipe.metric else 1.0,
        metric_weight_decay=recipe.metric.weight_decay if recipe.metric else True,
        views=recipe.augment.views,
        mixup_alpha=recipe.augment.mixup_alpha,
        metric_inputs=METRIC_LOSSES.meta(recipe.metric.loss.name).inputs if recipe.metric else (),
        detached_head=recipe.detached_head,
        loss_weight=recipe.loss_weight,
    )


def model_spec(
    recipe: Recipe, objective: Objective, num_classes: int, settings: TrainingSettings
) -> dict[str, Any]:
    """Arguments of `build_classifier` for a recipe (stored with the artefact)."""
    return {
        "backbone": settings.backbone,
        "num_classes": num_classes,
        "head": objective.loss.head,
        "head_scale": objective.loss.head_scale,
        "pretrained": settings.pretrained,
        "embedding_dim": recipe.metric.embedding_dim if recipe.metric else None,
        "weights_file": settings.weights,
        "prototypes": "prototypes" in objective.metric_inputs,
    }


def rebuild(artefact: Stage1Artefact, device: torch.device) -> Classifier:
    """The stage-1 network with its trained weights (no download: weights come from disk)."""
    spec = {**artefact.model_spec, "pretrained": False, "weights_file": ""}
    model = build_classifier(**spec)
    model.load_state_dict(artefact.state_dict)
    return model.to(device)


@dataclass(frozen=True)
class Stage1Job:
    """One stage-1 training: a recipe on the train split of an image set, with training
    settings and a seed (initialisation, sampling, augmentation), on a device."""

    recipe: Recipe
    imageset: ImageSet
    split: Split
    settings: TrainingSettings
    seed: int
    device: torch.device
    compile: bool = False

    def images(self, name: str) -> torch.Tensor:
        """The uint8 images of split `name`."""
        return self.imageset.images[self.split.indices(name)]

    def labels(self, name: str) -> torch.Tensor:
        """The labels of split `name`."""
        return self.imageset.labels[self.split.indices(name)]


def train_artefacts(
    job: Stage1Job,
    progress: bool,
    on_epoch: Callable[[int, float], None] | None = None,
    also_watch: tuple[str, ...] = (),
) -> dict[str, Stage1Artefact]:
    """Train stage 1 once and, for its settings' checkpoint rule and each rule in
    `also_watch`, the artefact of the weights that rule keeps, with the features and logits of
    every split (`on_epoch` as in `train_stage1`)."""
    started = time.perf_counter()
    counts = job.imageset.class_counts(job.split.train)
    schedule = Schedule.plan(int(counts.sum()), job.settings)
    objective = build_objective(job.recipe, counts, schedule.epochs)
    spec = model_spec(job.recipe, objective, len(counts), job.settings)
    torch.manual_seed(job.seed)
    model = build_classifier(**spec)
    outcome = train_stage1(
        Training(
            model,
            (job.images("train"), job.labels("train")),
            (job.images("val"), job.labels("val")),
            objective,
            job.settings,
            job.device,
            seed=job.seed,
            progress=progress,
            on_epoch=on_epoch,
            compile_model=job.compile,
            also_watch=also_watch,
            augment=AUGMENTATIONS[job.recipe.augment.strength](job.settings.orientation),
        )
    )
    artefacts = {}
    for rule, checkpoint in outcome.checkpoints.items():
        outcome.model.load_state_dict(checkpoint.state_dict)
        features, logits = {}, {}
        for name in SPLIT_NAMES:
            features[name], logits[name] = predict(
                outcome.model, job.images(name), outcome.normalizer, job.device
            )
        artefacts[rule] = Stage1Artefact(
            state_dict={k: v.detach().cpu().clone() for k, v in checkpoint.state_dict.items()},
            model_spec=spec,
            normalizer=(outcome.normalizer.mean, outcome.normalizer.std),
            features=features,
            logits=logits,
            kept_epoch=checkpoint.epoch,
            schedule=outcome.schedule.as_dict(),
            history=outcome.history,
            train_seconds=round(time.perf_counter() - started, 3),
            compiled=outcome.compiled,
        )
    return artefacts


def train_artefact(
    job: Stage1Job,
    progress: bool,
    on_epoch: Callable[[int, float], None] | None = None,
) -> Stage1Artefact:
    """Train stage 1 and keep the artefact of its settings' checkpoint rule."""
    return train_artefacts(job, progress, on_epoch)[job.settings.checkpoint]


def obtain_artefact(
    job: Stage1Job,
    key: str,
    cache: ArtefactCache,
    description: dict[str, Any],
    progress: bool,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[Stage1Artefact, bool]:
    """The artefact cached under `key`, trained first (and stored with `description`) if
    missing; returns it and whether it came from the cache. The key is claimed before it is
    trained, so processes sharing the cache train it once: the others wait and reuse it (a
    dead trainer's claim goes stale and is taken over, see `bench.core.claims`)."""
    cache.folder.mkdir(parents=True, exist_ok=True)
    claim, artefact = wait_for_claim(
        cache.folder / f"{key}.claim",
        lambda: cache.load(key, repair=False),
        lambda holder: tqdm.write(f"stage 1 {key} is being trained by {holder}; waiting for it"),
    )
    if claim is None:
        return artefact, True
    with claim:
        artefact = cache.load(key)  # the claim's holder repairs an unusable entry
        if artefact is not None:
            return artefact, True
        artefact = train_artefact(job, progress, on_epoch)
        cache.save(key, artefact, {**description, "train_seconds": artefact.train_seconds})
    return artefact, False


def augmented_view_features(
    artefact: Stage1Artefact,
    images: torch.Tensor,
    views: int,
    seed: int,
    device: torch.device,
    augment: Augment,
) -> torch.Tensor:
    """Features of `views` augmented passes of the stage-1 network over `images`, stacked view
    after view (cached beside the artefact for stage 2's `views` option, so they are computed
    here, by the code the artefact key covers)."""
    model = rebuild(artefact, device)
    normalizer = Normalizer(*artefact.normalizer)
    generator = torch.Generator().manual_seed(seed)
    stacked = []
    for _ in range(views):
        augmented = torch.cat(
            [
                augment(chunk.to(device), generator).round().to(torch.uint8).cpu()
                for chunk in images.split(512)
            ]
        )
        stacked.append(predict(model, augmented, normalizer, device)[0])
    return torch.cat(stacked)
