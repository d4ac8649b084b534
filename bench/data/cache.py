"""On-disk cache of decoded, resized image tensors, keyed by source content and target size.

Entries hold data only and are verified before use (`bench.core.safe_store`); an unusable one is
discarded, said, and decoded again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.core import safe_store
from bench.core.claims import busy, note_use, wait_for_claim
from bench.data.imageset import ImageSet


def _read(path: Path, repair: bool) -> ImageSet | None:
    """The image set at `path`, or None; an unusable entry is discarded (and said) when
    `repair` (only by the holder of its claim: an entry being saved looks unusable)."""
    stored = safe_store.load(path)
    problem = stored if isinstance(stored, safe_store.Unusable) else None
    if isinstance(stored, dict):
        try:
            return ImageSet(**stored)
        except (TypeError, ValueError, AttributeError) as error:  # data of another shape
            problem = safe_store.Unusable(path, f"not an image set: {error}")
    elif stored is not None and problem is None:
        problem = safe_store.Unusable(path, "not an image set")
    if problem is not None and repair:
        tqdm.write(problem.message())
        safe_store.discard(path)
    return None


class ImageCache:
    """Decoded image sets on disk: `<root>/images/<key>.pt` with its `<key>.json` description."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / "images"

    def get(self, key: str, build: Callable[[], ImageSet]) -> ImageSet:
        """The image set stored under `key`, or built and stored (under the key's claim, so
        that processes sharing the cache decode it once)."""
        path = self.folder / f"{key}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        note_use(self.root, f"images/{key}")  # `bench cache clear` leaves it be
        claim, imageset = wait_for_claim(
            path.with_suffix(".claim"),
            lambda: _read(path, repair=False),
            lambda holder: tqdm.write(f"images {key} are being decoded by {holder}; waiting"),
        )
        if claim is None:
            return imageset
        with claim:
            return _read(path, repair=True) or _store(path, build())

    def entries(self) -> list[dict[str, Any]]:
        """Every stored image set (also one without its description), with its size in bytes;
        one without a digest is stale: never read, decoded anew when needed."""
        rows = [
            {"key": meta.stem, "bytes": meta.stat().st_size, "stale": True}
            for meta in sorted(self.folder.glob("*.json"))
            if not meta.with_suffix(".pt").exists()  # a description left without its data
        ]
        for data in sorted(self.folder.glob("*.pt")):
            described = safe_store.description(data) or {}
            meta = data.with_suffix(".json")
            size = data.stat().st_size + (meta.stat().st_size if meta.exists() else 0)
            rows.append(
                {**described, "key": data.stem, "bytes": size, "stale": "sha256" not in described}
            )
        return rows

    def clear(self) -> tuple[int, dict[str, str]]:
        """Delete every decoded image set with its description, except those a live process
        uses or is decoding; returns how many were removed, and the keys kept with who holds
        them."""
        kept = busy(self.folder)
        removed = sum(1 for p in self.folder.glob("*.pt") if p.stem not in kept)
        for path in [*self.folder.glob("*.pt"), *self.folder.glob("*.json")]:
            if path.stem not in kept:
                path.unlink(missing_ok=True)
        return removed, kept


def _store(path: Path, imageset: ImageSet) -> ImageSet:
    """Save `imageset` at `path` with its description; returns it."""
    fields = {name: getattr(imageset, name) for name in imageset.__dataclass_fields__}
    created = datetime.now(UTC).isoformat(timespec="seconds")
    described = {"dataset": imageset.name, "images": len(imageset.labels), "created": created}
    safe_store.save(path, fields, {**described, "size": int(imageset.images.shape[-1])})
    return imageset
