"""Running a stage-2 recipe on a stage-1 artefact: choosing its features, then the method."""

from __future__ import annotations

import torch

from bench.artefacts import ArtefactCache, Stage1Artefact
from bench.augment import Augment, Normalizer
from bench.data.imageset import ImageSet
from bench.data.split import Split
from bench.feature_sources import BatchNormFinetuning, CachedFeatures, FeatureSource
from bench.recipes import Stage2Recipe
from bench.stage1 import SPLIT_NAMES, rebuild
from bench.stage2 import STAGE2_METHODS, HeadWeights, Stage2Context, Stage2Outcome
from bench.training import predict


def head_weights(artefact: Stage1Artefact) -> HeadWeights:
    """The stage-1 head as tensors (linear or cosine)."""
    state, spec = artefact.state_dict, artefact.model_spec
    return HeadWeights(
        state["head.weight"], state.get("head.bias"), spec["head"], spec["head_scale"]
    )


def augmented_view_features(
    artefact: Stage1Artefact, images: torch.Tensor, views: int, seed: int, device: torch.device
) -> torch.Tensor:
    """Features of `views` augmented passes over the train images, stacked view after view."""
    model = rebuild(artefact, device)
    normalizer, augment = Normalizer(*artefact.normalizer), Augment()
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


def feature_source(
    recipe: Stage2Recipe,
    artefact: Stage1Artefact,
    key: str,
    imageset: ImageSet,
    split: Split,
    seed: int,
    device: torch.device,
    cache: ArtefactCache,
) -> FeatureSource:
    """Cached features (plus cached augmented views), or the backbone in finetune-bn mode."""
    train_labels = imageset.labels[split.train]
    if recipe.mode == "finetune-bn":
        images = {name: imageset.images[split.indices(name)] for name in SPLIT_NAMES}
        return BatchNormFinetuning(
            rebuild(artefact, device),
            images,
            train_labels,
            Normalizer(*artefact.normalizer),
            device,
            seed,
        )
    rows, row_labels = artefact.features["train"], train_labels
    if recipe.views:
        name = f"views{recipe.views}"
        extra = cache.load_extra(key, name)
        if extra is None:
            extra = augmented_view_features(
                artefact, imageset.images[split.train], recipe.views, seed, device
            )
            cache.save_extra(key, name, extra)
        rows = torch.cat([rows, extra])
        row_labels = train_labels.repeat(1 + recipe.views)
    return CachedFeatures(artefact.features, rows, row_labels)


def run_stage2(
    recipe: Stage2Recipe,
    artefact: Stage1Artefact,
    key: str,
    imageset: ImageSet,
    split: Split,
    seed: int,
    device: torch.device,
    cache: ArtefactCache,
) -> Stage2Outcome:
    """Apply a stage-2 recipe; every choice it makes is made on the validation split."""
    context = Stage2Context(
        source=feature_source(recipe, artefact, key, imageset, split, seed, device, cache),
        # Train and val labels only: nothing in stage 2 can look at the test split's labels.
        labels={name: imageset.labels[split.indices(name)] for name in ("train", "val")},
        head=head_weights(artefact),
        class_counts=imageset.class_counts(split.train),
        seed=seed,
        device=device,
    )
    return STAGE2_METHODS[recipe.method.name](context, **recipe.method.params)
