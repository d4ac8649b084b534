"""The GPU benchmark: what the harness gets out of one GPU, in one command.

    python benchmarks/gpu.py            # on a machine with a GPU: about 5 minutes on one H100
    python benchmarks/gpu.py --tiny     # anywhere, in seconds (CI runs it on the CPU)

1. Harness vs bare-loop images per second (`bare_loop.py`): `resnet50` at 224 px with bf16
   autocast (goal: ≥ 0.85), and `resnet-compact` at 32 px.
2. The wall time of `bench run --methods ce,ce+crt,supcon+crt --dataset skin --profile gpu
   --no-pretrained --seeds 0` on the shared HAM10000 (`BENCH_DATA_ROOT` or
   ../shared/data/ham10000; from scratch, since no ImageNet weights can be fetched on the
   measuring machines: it costs the same time as fine-tuning).

`--tiny` shrinks everything (images, sizes, epochs; the run on `synthetic`) so that the script
cannot rot where no GPU is lent. The device's name is printed with the numbers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bare_loop import compare

from bench.components.settings import TrainingSettings
from bench.run.work import device_name

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ham10000"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a small, fast version (CPU, CI)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # survive a kill
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {device_name(device)}; torch {torch.__version__}")
    if args.tiny:
        cases = [
            ("resnet50", 32, 64, TrainingSettings(batch_size=32, epochs=1, min_steps=0)),
            ("resnet-compact", 16, 128, TrainingSettings(batch_size=64, epochs=1, min_steps=0)),
        ]
        repeats = 1
    else:
        cases = [
            ("resnet50", 224, 4096, TrainingSettings(batch_size=128, epochs=2, min_steps=0)),
            ("resnet-compact", 32, 16384, TrainingSettings(batch_size=128, epochs=2, min_steps=0)),
        ]
        repeats = 3
    for backbone, size, n_train, settings in cases:
        result = compare(backbone, size, n_train, settings, device, repeats)
        print(
            f"{backbone} at {size} px, batch {settings.batch_size}: harness "
            f"{result.images_per_s:.0f} images/s; bare loop {result.bare_s:.2f} s, harness "
            f"{result.harness_s:.2f} s -> harness / bare = {result.ratio:.3f}"
        )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if args.tiny:
            run = ["--methods", "ce,ce+crt", "--dataset", "synthetic", "--image-size", "16"]
            run += ["--epochs", "1", "--min-steps", "0"]
        else:
            root = Path(os.environ.get("BENCH_DATA_ROOT") or SHARED)
            if not root.is_dir():
                print(f"bench run on skin: skipped, no HAM10000 at {root} (set BENCH_DATA_ROOT)")
                return
            run = ["--methods", "ce,ce+crt,supcon+crt", "--dataset", "skin", "--profile", "gpu"]
            run += ["--no-pretrained", "--data-root", str(root)]
        command = [
            sys.executable, "-m", "bench.cli.main", "run", *run, "--seeds", "0", "--no-progress",
            "--no-report", "--results-dir", str(folder / "results"),
            "--cache-dir", str(folder / "cache"),
        ]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
    print(f"bench run {' '.join(run)} --seeds 0: {wall:.0f} s wall, from an empty cache")


if __name__ == "__main__":
    main()
