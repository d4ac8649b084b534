"""An estimate of a study's training compute from FLOPs, where no GPU is lent to measure it.

    python benchmarks/study_cost.py studies/paper-gpu.toml --data-root ../shared/data
    python benchmarks/study_cost.py studies/paper-gpu.toml --tflops 50

For every dataset of the study and every distinct stage 1 of its methods, at the settings the
study gives it: the images one stage-1 training processes (its schedule's optimiser steps ×
batch size × the recipe's views, the `min_steps` floor included), times the training FLOPs of
one image (3 × the backbone's forward FLOPs, counted by torch's FLOP counter at the image
size: forward, and backward at about twice the forward), plus one forward pass over every image
for the features stage 2 reads; summed over the splits. Divided by an assumed sustained
throughput (`--tflops`, default 50 TFLOP/s: about 5 % of an H100's dense bf16 peak, roughly
2,000 ResNet-50 training images per second; an assumption, not a measurement) it gives
hours. Stage 2 on cached features, evaluation and data loading are left out. It is an
estimate: `benchmarks/gpu.py` measures where a GPU is lent.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.components.models import build_classifier
from bench.core.layout import cache_root
from bench.data.formats import FORMATS
from bench.data.loading import locate, search
from bench.data.split import Items
from bench.data.synthetic import class_counts
from bench.experiment.conditions import Conditions
from bench.experiment.experiment import settings_for
from bench.recipes.methods import MethodRegistry
from bench.stage1.schedule import Schedule
from bench.study.file import StudyDataset, load_study


def forward_flops(backbone: str, image_size: int, classes: int) -> float:
    """FLOPs of one image's forward pass through the backbone and a linear head."""
    model = build_classifier(backbone, classes).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size))
    return float(counter.get_total_flops())


def split_sizes(dataset: StudyDataset, data_seed: int, data_root: Path | None) -> dict[str, int]:
    """The images of each split of one data seed (from the item table: nothing decoded)."""
    spec = dataset.spec()
    if FORMATS.meta(spec.formats[0]).generated:
        total = sum(class_counts(spec.params["n_images"], spec.params["imbalance_ratio"]))
        test, val = round(total * spec.test_fraction), round(total * spec.val_fraction)
        return {"train": total - test - val, "val": val, "test": test}
    source = locate(spec, search(spec, data_root, cache_root(None)))
    split = spec.split(Items.of_source(source, spec.name), data_seed)
    return {name: len(split.indices(name)) for name in ("train", "val", "test")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--tflops", type=float, default=50.0, help="assumed sustained TFLOP/s")
    args = parser.parse_args()
    registry = MethodRegistry()
    study = load_study(args.study, registry)
    stage1s = {m.stage1.name: m for m in study.method_list(registry)}  # one method per stage 1
    seconds_per_flop = 1 / (args.tflops * 1e12)
    print(
        f"study {study.name}: {len(stage1s)} stage 1s × {len(study.data_seeds)} split(s) × "
        f"{len(study.train_seeds)} train seed(s) per dataset, at {args.tflops:g} TFLOP/s"
    )
    print("| dataset | backbone | px | train images | stage-1 images (all) | PFLOP | hours |")
    print("|---|---|---|---|---|---|---|")
    total_hours = 0.0
    for dataset in study.datasets:
        spec = dataset.spec()
        conditions = dataset.conditions(Conditions())
        flops = images = 0.0
        per_image = None
        train_images = []
        for data_seed in study.data_seeds:
            sizes = split_sizes(dataset, data_seed, args.data_root)
            train_images.append(sizes["train"])
            for method in stage1s.values():
                # Pretrained weights change no FLOP; not asking for them needs none here.
                overrides = {**conditions.overrides, "pretrained": False}
                resolved = settings_for(spec, method, overrides, conditions.profile)
                settings = resolved.settings
                if per_image is None:
                    per_image = forward_flops(
                        settings.backbone, settings.image_size, len(spec.classes) or 2
                    )
                steps = Schedule.plan(sizes["train"], settings).total_steps
                seen = steps * settings.batch_size * method.stage1.augment.views
                flops += len(study.train_seeds) * (
                    3 * per_image * seen + per_image * sum(sizes.values())
                )
                images += len(study.train_seeds) * seen
        hours = flops * seconds_per_flop / 3600
        total_hours += hours
        print(f"| {dataset.name} | {settings.backbone} | {settings.image_size} | "
              f"{min(train_images)}–{max(train_images)} | {images / 1e6:.1f} M | "
              f"{flops / 1e15:,.0f} | {hours:.1f} |")  # fmt: skip
    print(f"total: {total_hours:.1f} GPU-hours at {args.tflops:g} TFLOP/s sustained (an estimate)")


if __name__ == "__main__":
    main()
