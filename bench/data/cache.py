"""On-disk cache of decoded, resized image tensors, keyed by source content and target size."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import torch

from bench.data.imageset import ImageSet
from bench.files import write_atomic


def cache_root() -> Path:
    """The cache folder: `$BENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/medlt-bench`, else ~/.cache."""
    if env := os.environ.get("BENCH_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "medlt-bench"


def cached_imageset(key: str, build: Callable[[], ImageSet]) -> ImageSet:
    """Load the image set stored under `key`, or build and store it."""
    path = cache_root() / "images" / f"{key}.pt"
    if path.exists():
        stored = torch.load(path, weights_only=False)
        return ImageSet(**stored)
    imageset = build()
    fields = {name: getattr(imageset, name) for name in imageset.__dataclass_fields__}
    buffer = io.BytesIO()
    torch.save(fields, buffer)
    write_atomic(path, buffer.getvalue())
    return imageset
