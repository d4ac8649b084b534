"""Turning a dataset spec into an in-memory ImageSet: locate the files, decode once, cache."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from bench.data import ham10000, synthetic
from bench.data.cache import cache_root, cached_imageset
from bench.data.imageset import ImageSet
from bench.data.specs import DatasetSpec
from bench.errors import BenchError
from bench.files import stable_hash


def candidate_roots(spec: DatasetSpec, data_root: Path | None) -> list[Path]:
    """Where to look, in order: `--data-root`, `$BENCH_DATA_ROOT`, the cache's data folder.

    Each place is tried as the dataset folder itself and as a parent holding a sub-folder named
    by the spec's `params.folder`.
    """
    places = [p for p in (data_root, os.environ.get("BENCH_DATA_ROOT")) if p]
    places.append(cache_root() / "data")
    folder = spec.params.get("folder", spec.name)
    roots: list[Path] = []
    for place in map(Path, places):
        roots += [place, place / folder]
    return roots


def load_imageset(
    spec: DatasetSpec, image_size: int, data_root: Path | None = None, progress: bool = True
) -> ImageSet:
    """Load `spec` at `image_size`×`image_size` as uint8 tensors (decoded data is cached)."""
    if spec.format == "synthetic":
        return _load_synthetic(spec, image_size)
    if spec.format == "ham10000":
        return _load_ham10000(spec, image_size, data_root, progress)
    raise BenchError(f"{spec.path}: no reader for format {spec.format!r}.")


def _load_synthetic(spec: DatasetSpec, image_size: int) -> ImageSet:
    params = spec.params
    counts = synthetic.class_counts(
        int(params.get("n_images", 2400)), float(params.get("imbalance_ratio", 58.3))
    )
    seed, difficulty = int(params.get("seed", 0)), float(params.get("difficulty", 1.0))
    images, labels = synthetic.generate(counts, image_size, seed, difficulty)
    ids = [f"syn-{i:06d}" for i in range(len(labels))]
    return ImageSet(
        name=spec.name,
        images=images,
        labels=labels,
        item_ids=ids,
        groups=ids,
        class_names=spec.classes,
        fingerprint=synthetic.fingerprint(counts, image_size, seed, difficulty),
        provenance={
            "generator": "bench.data.synthetic",
            "counts": counts,
            "seed": seed,
            "difficulty": difficulty,
        },
    )


def _load_ham10000(
    spec: DatasetSpec, image_size: int, data_root: Path | None, progress: bool
) -> ImageSet:
    roots = candidate_roots(spec, data_root)
    root = next((r for r in roots if ham10000.is_ham10000_root(r)), None)
    if root is None:
        looked = ", ".join(str(r) for r in roots)
        raise BenchError(
            f"{spec.name}: HAM10000 data not found. Looked in: {looked}. {ham10000.LAYOUT_HELP}"
        )
    table = ham10000.read_metadata(root, spec.classes)
    content = ham10000.content_fingerprint(table, root)
    key = stable_hash(
        {
            "format": "ham10000",
            "reader": ham10000.READER_VERSION,
            "content": content,
            "size": image_size,
            "classes": spec.classes,
        }
    )
    imageset = cached_imageset(
        key, lambda: ham10000.decode(table, image_size, spec.classes, spec.name, key, progress)
    )
    return dataclasses.replace(
        imageset, provenance={"root": str(root.resolve()), "content": content}
    )
