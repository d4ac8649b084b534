"""Speed benchmarks, reported as ratios against a baseline measured in the same run.

    nox -s perf          (or: python benchmarks/perf.py)

1. Batched tensor augmentation (`bench.stage1.augment.Augment`) against the per-image torchvision
   pipeline a DataLoader worker would run (flips, affine, colour jitter).
2. cRT on cached stage-1 features (`features` mode) against cRT with images through the frozen
   backbone (`finetune-bn` mode), same head, same epochs.
3. Stage-1 training steps of the compact ResNet at 28 px (batch 64) with the network and the
   batches in channels-last memory order, as `build_classifier` and `Normalizer` keep them,
   against the same steps in the default contiguous order.
4. Loading the real HAM10000 images at 32 px, when found (`BENCH_DATA_ROOT` or
   ../shared/data/ham10000): the cached uint8 tensors against the first load, which reads the
   metadata, hashes every file, decodes and resizes (each into a fresh, temporary cache).
5. The harness's stage-1 training against a bare PyTorch loop with the same augmentation and
   validation of the last epoch (`bare_loop.py`), back to back, median of 3: at the CPU defaults
   (`resnet-compact`, 28 px, batch 64) and `resnet18` at 64 px.
6. The seconds `bench run` spends outside stage-1 training (loading data and artefacts, stage
   2, scoring, writing; no report): the `quick` list at seed 0 on `synthetic` at its
   defaults, a third of the main job, from an empty cache.
7. Start-up of the command line: `bench --help` and `bench list methods`, median of 5 wall
   times, against the interpreter alone (`python -c pass`) and `python -c "import torch"`
   (what every command paid before the commands imported their libraries lazily).
   `python benchmarks/perf.py startup` runs this item alone.
8. Stage 1 under its default rule (`last`: only the last epoch validated) against the same
   training validated after every epoch (as under `best`, or a sweep's pruner), at the CPU
   defaults of `blood-lt` (`resnet-compact`, 28 px, batch 128) and its training and
   validation sizes, and at `organa-lt`'s ratio of validation to training images (a quarter of
   its sizes), 3 epochs in one thread (as a study's workers), alternating, median of 3: the
   share of an epoch a validation pass costs. `python benchmarks/perf.py validation` runs this
   item alone.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2 as T
from bare_loop import compare, harness

from bench.components.models import build_classifier
from bench.components.settings import TrainingSettings
from bench.data import synthetic
from bench.data.loading import load_imageset
from bench.data.specs import get_spec
from bench.stage1.augment import Augment, Normalizer
from bench.stage1.training import predict
from bench.stage2.feature_sources import BatchNormFinetuning, CachedFeatures
from bench.stage2.methods import HeadWeights, Stage2Context, crt

CPU = torch.device("cpu")


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Fastest wall time of `repeats` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def augmentation(images: torch.Tensor) -> tuple[float, float]:
    batched = Augment()
    generator = torch.Generator().manual_seed(0)
    per_image = T.Compose(
        [
            T.RandomHorizontalFlip(),
            T.RandomVerticalFlip(),
            T.RandomAffine(degrees=180, translate=(0.1, 0.1), scale=(0.85, 1.15)),
            T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        ]
    )
    fast = best_of(lambda: batched(images, generator))
    slow = best_of(lambda: torch.stack([per_image(image) for image in images]))
    return fast, slow


def stage2_modes(images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    torch.manual_seed(0)
    model = build_classifier("resnet-compact", 7)
    normalizer = Normalizer.fit(images)
    features, _ = predict(model, images, normalizer, CPU)
    head = HeadWeights(model.head.weight.detach(), model.head.bias.detach())
    label_splits = {"train": labels, "val": labels, "test": labels}
    counts = np.bincount(labels.numpy(), minlength=7)

    def run(source) -> None:
        context = Stage2Context(source, label_splits, head, counts, seed=0, device=CPU)
        crt(context, epochs=2, min_steps=0)

    splits = {"train": features, "val": features, "test": features}
    cached = best_of(lambda: run(CachedFeatures(splits, features, labels)))
    images_by_split = {"train": images, "val": images, "test": images}
    finetune = best_of(
        lambda: run(BatchNormFinetuning(model, images_by_split, labels, normalizer, CPU, seed=0)),
        repeats=1,
    )
    return cached, finetune


def memory_formats(images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Seconds of 20 training steps in channels-last and in contiguous order."""
    batch, targets = images[:64], labels[:64]

    def steps(channels_last: bool) -> float:
        torch.manual_seed(0)
        model = build_classifier("resnet-compact", 7)
        inputs = Normalizer.fit(batch)(batch)
        if not channels_last:
            model = model.to(memory_format=torch.contiguous_format)
            inputs = inputs.contiguous()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def run() -> None:
            for _ in range(20):
                loss = torch.nn.functional.cross_entropy(model(inputs), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

        return best_of(run)

    return steps(True), steps(False)


def ham10000_loading(root: Path) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        start = time.perf_counter()
        load_imageset(get_spec("skin"), 32, cache_dir=cache, data_root=root, progress=False)
        first = time.perf_counter() - start
        cached = best_of(
            lambda: load_imageset(
                get_spec("skin"), 32, cache_dir=cache, data_root=root, progress=False
            )
        )
    return first, cached


def bare_loop_ratios() -> None:
    """Item 5: harness images/s as a share of the bare loop's, on the CPU."""
    cases = [
        ("resnet-compact", 28, 1024, TrainingSettings(batch_size=64, epochs=2, min_steps=0)),
        ("resnet18", 64, 256, TrainingSettings(batch_size=64, epochs=1, min_steps=0)),
    ]
    for backbone, size, n_train, settings in cases:
        result = compare(backbone, size, n_train, settings, CPU)
        print(
            f"stage 1, {backbone} at {size} px, {n_train} images x {settings.epochs} epoch(s) "
            f"with validation: bare loop {result.bare_s:.2f} s, harness {result.harness_s:.2f} s"
            f" -> harness / bare images per second = {result.ratio:.3f}"
        )


def outside_training() -> None:
    """Item 6: what a run costs beyond training its stage 1."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        command = [
            sys.executable, "-m", "bench.cli.main", "run", "--methods", "quick", "--dataset",
            "synthetic", "--seeds", "0", "--device", "cpu", "--no-progress", "--no-report",
            "--results-dir", str(folder / "results"), "--cache-dir", str(folder / "cache"),
        ]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        records = [
            json.loads(p.read_text()) for p in folder.glob("results/synthetic/runs/*/run.json")
        ]
    trained = sum(r["stage1"]["train_s"] for r in records if not r["stage1"]["reused"])
    stage2 = sum(r["timings"]["stage2_s"] for r in records)
    outside, runs = wall - trained, len(records)
    print(
        f"bench run --methods quick --seeds 0 ({runs} runs): {wall:.0f} s, of which stage-1 "
        f"training {trained:.0f} s; outside it {outside:.0f} s ({outside / runs:.1f} s per run,"
        f" of which stage 2 {stage2 / runs:.1f} s) -> {outside / wall:.1%} of the wall time"
    )


def median_wall(command: list[str], repeats: int = 5) -> float:
    """The median wall time of `command` over `repeats` runs, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def startup() -> None:
    """Item 7: how long the command line takes to answer."""
    python = [sys.executable]
    baseline = median_wall([*python, "-c", "pass"])
    torch_import = median_wall([*python, "-c", "import torch"])
    for args in (["--help"], ["list", "methods"]):
        wall = median_wall([*python, "-m", "bench.cli.main", *args])
        print(
            f"bench {' '.join(args)}: {wall:.2f} s (median of 5; the interpreter alone "
            f"{baseline:.2f} s, import torch {torch_import:.2f} s) -> bench / import torch = "
            f"{wall / torch_import:.2f}x"
        )


def validation_cost() -> None:
    """Item 8: what validating every stage-1 epoch costs, as a share of an epoch, in one
    thread (as a study's workers run, `--threads 1`)."""
    settings = TrainingSettings(batch_size=128, epochs=3, min_steps=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for name, n_train, n_val in (("blood-lt", 4668, 1712), ("organa-lt / 4", 4148, 1623)):
        generator = torch.Generator().manual_seed(0)
        shape = (n_train + n_val, 3, 28, 28)
        images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
        labels = torch.arange(n_train + n_val) % 8
        train, val = (images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:])
        template = build_classifier("resnet-compact", 8)
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(3):
            for every_epoch in (True, False):
                model = copy.deepcopy(template)
                times[every_epoch].append(harness(model, train, val, settings, CPU, every_epoch))
        every, last = statistics.median(times[True]), statistics.median(times[False])
        epoch = last / settings.epochs  # one epoch, its share of the final validation included
        passes = settings.epochs - 1  # the validations the default rule leaves out
        print(
            f"stage 1 on {name} sizes ({n_train} training, {n_val} validation images), "
            f"{settings.epochs} epochs, 1 thread: validated every epoch {every:.2f} s, last "
            f"epoch only {last:.2f} s -> one validation pass / one epoch = "
            f"{(every - last) / passes / epoch:.3f}"
        )
    torch.set_num_threads(threads)


def main() -> None:
    if sys.argv[1:] == ["startup"]:
        startup()
        return
    if sys.argv[1:] == ["validation"]:
        validation_cost()
        return
    startup()
    images, labels = synthetic.generate(synthetic.class_counts(1200, 58.3), 28, seed=0)
    fast, slow = augmentation(images[:512])
    print(
        f"augmentation of 512 images: batched {fast * 1e3:.0f} ms, per-image {slow * 1e3:.0f} ms"
        f" -> per-image / batched = {slow / fast:.1f}x"
    )
    cached, finetune = stage2_modes(images, labels)
    print(
        f"cRT, 2 epochs on {len(labels)} images: cached features {cached:.2f} s, "
        f"finetune-bn {finetune:.2f} s -> finetune-bn / features = {finetune / cached:.1f}x"
    )
    last, contiguous = memory_formats(images, labels)
    print(
        f"20 stage-1 steps at 28 px, batch 64: channels-last {last:.2f} s, contiguous "
        f"{contiguous:.2f} s -> contiguous / channels-last = {contiguous / last:.2f}x"
    )
    bare_loop_ratios()
    validation_cost()
    outside_training()
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "ham10000"
    root = Path(os.environ.get("BENCH_DATA_ROOT") or shared)
    if not root.is_dir():
        print(f"HAM10000 loading: skipped, no data at {root}")
        return
    first, cached = ham10000_loading(root)
    print(
        f"HAM10000 at 32 px: first load {first:.1f} s, cached {cached:.2f} s "
        f"-> first / cached = {first / cached:.0f}x"
    )


if __name__ == "__main__":
    main()
