"""Stage 1: build the objective and network a recipe describes, train it, keep the artefact."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import torch

from bench.artefacts import ArtefactCache, Stage1Artefact, stage1_key
from bench.data.imageset import ImageSet
from bench.data.split import Split
from bench.losses import LOSSES
from bench.metric_losses import METRIC_LOSSES
from bench.models import Classifier, build_classifier
from bench.recipes import Recipe
from bench.samplers import SAMPLERS
from bench.training import Objective, TrainSettings, predict, train_stage1
from bench.weighting import WEIGHTINGS

SPLIT_NAMES = ("train", "val", "test")


def build_objective(recipe: Recipe, counts: Any, epochs: int) -> Objective:
    """The loss, class weights, sampler and metric term of a stage-1 recipe."""
    weights = (
        WEIGHTINGS[recipe.weighting.name](counts, **recipe.weighting.params)
        if recipe.weighting
        else None
    )
    metric = None
    if recipe.metric:
        metric = METRIC_LOSSES[recipe.metric.loss.name](
            len(counts), recipe.metric.embedding_dim, **recipe.metric.loss.params
        )
    return Objective(
        loss=LOSSES[recipe.loss.name](counts, **recipe.loss.params),
        sampler=functools.partial(SAMPLERS[recipe.sampler.name], **recipe.sampler.params),
        class_weights=weights,
        weights_from_epoch=round(recipe.weighting_start * epochs),
        metric=metric,
        metric_weight=recipe.metric.weight if recipe.metric else 0.0,
    )


def model_spec(
    recipe: Recipe, objective: Objective, num_classes: int, settings: dict[str, Any]
) -> dict[str, Any]:
    """Arguments of `build_classifier` for a recipe (stored with the artefact)."""
    return {
        "backbone": settings["backbone"],
        "num_classes": num_classes,
        "head": objective.loss.head,
        "head_scale": objective.loss.head_scale,
        "pretrained": settings["pretrained"],
        "embedding_dim": recipe.metric.embedding_dim if recipe.metric else None,
    }


def rebuild(artefact: Stage1Artefact, device: torch.device) -> Classifier:
    """The stage-1 network with its trained weights (no download: weights come from disk)."""
    spec = {**artefact.model_spec, "pretrained": False}
    model = build_classifier(**spec)
    model.load_state_dict(artefact.state_dict)
    return model.to(device)


def train_artefact(
    recipe: Recipe,
    imageset: ImageSet,
    split: Split,
    settings: dict[str, Any],
    seed: int,
    device: torch.device,
    progress: bool,
    on_epoch: Callable[[int, float], None] | None = None,
) -> Stage1Artefact:
    """Train stage 1 with `seed` and compute the features and logits of every split
    (`on_epoch` as in `train_stage1`)."""
    started = time.perf_counter()
    counts = imageset.class_counts(split.train)
    objective = build_objective(recipe, counts, settings["epochs"])
    spec = model_spec(recipe, objective, len(counts), settings)
    torch.manual_seed(seed)
    model = build_classifier(**spec)
    train_settings = TrainSettings(
        **{f.name: settings[f.name] for f in dataclasses.fields(TrainSettings)}
    )
    outcome = train_stage1(
        model,
        (imageset.images[split.train], imageset.labels[split.train]),
        (imageset.images[split.val], imageset.labels[split.val]),
        objective,
        train_settings,
        device,
        seed=seed,
        progress=progress,
        on_epoch=on_epoch,
    )
    features, logits = {}, {}
    for name in SPLIT_NAMES:
        features[name], logits[name] = predict(
            outcome.model, imageset.images[split.indices(name)], outcome.normalizer, device
        )
    return Stage1Artefact(
        state_dict={k: v.cpu() for k, v in outcome.model.state_dict().items()},
        model_spec=spec,
        normalizer=(outcome.normalizer.mean, outcome.normalizer.std),
        features=features,
        logits=logits,
        best_epoch=outcome.best_epoch,
        history=outcome.history,
        train_seconds=round(time.perf_counter() - started, 3),
    )


def obtain_artefact(
    config: dict[str, Any],
    recipe: Recipe,
    imageset: ImageSet,
    split: Split,
    device: torch.device,
    cache: ArtefactCache,
    progress: bool,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[str, Stage1Artefact, bool]:
    """The cached artefact of this stage-1 configuration, trained first if missing.

    Returns the key, the artefact, and whether it came from the cache.
    """
    key = stage1_key(config)
    artefact = cache.load(key)
    if artefact is not None:
        return key, artefact, True
    artefact = train_artefact(
        recipe,
        imageset,
        split,
        config["training"],
        config["train_seed"],
        device,
        progress,
        on_epoch,
    )
    cache.save(
        key,
        artefact,
        {
            "dataset": config["dataset"]["name"],
            "stage1": recipe.name,
            "data_seed": config["split"]["data_seed"],
            "train_seed": config["train_seed"],
            "train_seconds": artefact.train_seconds,
        },
    )
    return key, artefact, False
