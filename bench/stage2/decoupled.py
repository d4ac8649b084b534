"""Running a stage-2 recipe on a stage-1 artefact: choosing its features, then the method."""

from __future__ import annotations

import torch

from bench.components.catalogue import STAGE2_METHODS
from bench.recipes.methods import Stage2Recipe
from bench.stage1.artefacts import ArtefactCache, Stage1Artefact
from bench.stage1.augment import Augment, Normalizer
from bench.stage1.job import SPLIT_NAMES, Stage1Job, augmented_view_features, rebuild
from bench.stage2.feature_sources import BatchNormFinetuning, CachedFeatures, FeatureSource
from bench.stage2.methods import HeadWeights, Stage2Context, Stage2Outcome


def head_weights(artefact: Stage1Artefact) -> HeadWeights:
    """The stage-1 head as tensors (linear or cosine)."""
    state, spec = artefact.state_dict, artefact.model_spec
    return HeadWeights(
        state["head.weight"], state.get("head.bias"), spec["head"], spec["head_scale"]
    )


def feature_source(
    recipe: Stage2Recipe, artefact: Stage1Artefact, key: str, job: Stage1Job, cache: ArtefactCache
) -> FeatureSource:
    """Cached features (plus cached augmented views), or the backbone in finetune-bn mode."""
    train_labels = job.labels("train")
    augment = Augment.for_orientation(job.settings.orientation)  # as stage 1 was trained
    if recipe.mode == "finetune-bn":
        return BatchNormFinetuning(
            rebuild(artefact, job.device),
            {name: job.images(name) for name in SPLIT_NAMES},
            train_labels,
            Normalizer(*artefact.normalizer),
            job.device,
            job.seed,
            augment,
        )
    rows, row_labels = artefact.features["train"], train_labels
    if recipe.views:
        name = f"views{recipe.views}"
        extra = cache.load_extra(key, name)
        if extra is None:
            extra = augmented_view_features(
                artefact, job.images("train"), recipe.views, job.seed, job.device, augment
            )
            cache.save_extra(key, name, extra)
        rows = torch.cat([rows, extra])
        row_labels = train_labels.repeat(1 + recipe.views)
    return CachedFeatures(artefact.features, rows, row_labels)


def run_stage2(
    recipe: Stage2Recipe,
    artefact: Stage1Artefact,
    key: str,
    job: Stage1Job,
    cache: ArtefactCache,
) -> Stage2Outcome:
    """Apply a stage-2 recipe to the artefact of `job` (stored under `key`), with the job's
    seed and device; every choice it makes is made on the validation split."""
    context = Stage2Context(
        source=feature_source(recipe, artefact, key, job, cache),
        # Train and val labels only: nothing in stage 2 can look at the test split's labels.
        labels={name: job.labels(name) for name in ("train", "val")},
        head=head_weights(artefact),
        class_counts=job.imageset.class_counts(job.split.train),
        seed=job.seed,
        device=job.device,
    )
    return STAGE2_METHODS[recipe.method.name](context, **recipe.method.params)
