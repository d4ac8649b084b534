"""On-disk cache of decoded, resized image tensors, keyed by source content and target size.

Entries hold data only and are verified before use (`bench.safe_store`); an unusable one is
discarded, said, and decoded again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench import safe_store
from bench.data.imageset import ImageSet


def cache_root() -> Path:
    """The cache folder: `$BENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/medlt-bench`, else ~/.cache."""
    if env := os.environ.get("BENCH_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "medlt-bench"


def images_folder() -> Path:
    """Where decoded image sets are kept: `<cache>/images`."""
    return cache_root() / "images"


def cached_imageset(key: str, build: Callable[[], ImageSet]) -> ImageSet:
    """Load the image set stored under `key`, or build and store it."""
    path = images_folder() / f"{key}.pt"
    stored = safe_store.load(path)
    if isinstance(stored, safe_store.Unusable):
        tqdm.write(stored.message())
        safe_store.discard(path)
    elif stored is not None:
        try:
            return ImageSet(**stored)
        except (TypeError, ValueError) as error:  # verified data of another shape
            tqdm.write(safe_store.Unusable(path, f"not an image set: {error}").message())
            safe_store.discard(path)
    imageset = build()
    fields = {name: getattr(imageset, name) for name in imageset.__dataclass_fields__}
    created = datetime.now(UTC).isoformat(timespec="seconds")
    described = {"dataset": imageset.name, "images": len(imageset.labels), "created": created}
    safe_store.save(path, fields, {**described, "size": int(imageset.images.shape[-1])})
    return imageset


def image_entries() -> list[dict[str, Any]]:
    """Every stored image set (also one without its description), with its size in bytes;
    one without a digest is stale: never read, decoded anew when needed."""
    rows = []
    for data in sorted(images_folder().glob("*.pt")):
        described = safe_store.description(data) or {}
        meta = data.with_suffix(".json")
        size = data.stat().st_size + (meta.stat().st_size if meta.exists() else 0)
        rows.append(
            {**described, "key": data.stem, "bytes": size, "stale": "sha256" not in described}
        )
    return rows


def clear_images() -> int:
    """Delete every decoded image set; returns how many there were."""
    count = len(list(images_folder().glob("*.pt")))
    shutil.rmtree(images_folder(), ignore_errors=True)
    return count
