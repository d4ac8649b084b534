"""Turning a dataset spec into an in-memory ImageSet: locate the files, decode once, cache."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.core.code_digest import data_code
from bench.core.errors import BenchError
from bench.core.files import stable_hash
from bench.data.cache import ImageCache
from bench.data.formats import FORMATS, generator, reader
from bench.data.imageset import ImageSet
from bench.data.source import Source
from bench.data.specs import DatasetSpec


def data_home(cache_dir: Path) -> Path:
    """Where downloaded datasets go and are looked for last: `<cache>/data`."""
    return cache_dir / "data"


def candidate_roots(spec: DatasetSpec, data_root: Path | None, cache_dir: Path) -> list[Path]:
    """Where to look, in order: `--data-root`, `$BENCH_DATA_ROOT`, the cache's data folder.

    Each place is tried first as a parent holding a sub-folder named by the spec's
    `params.folder` or after the dataset, then as the dataset folder itself (where a format
    may look one level down: `medmnist` finds `NAME.npz` in `NAME/` too). An ad-hoc dataset
    is only looked for where its name points.
    """
    if spec.location is not None:
        return [spec.location]
    places = [Path(p) for p in (data_root, os.environ.get("BENCH_DATA_ROOT")) if p]
    places.append(data_home(cache_dir))
    folders = dict.fromkeys([spec.params.get("folder", spec.name), spec.name])
    roots: list[Path] = []
    for place in places:
        roots += [*(place / folder for folder in folders), place]
    return list(dict.fromkeys(roots))


@dataclass(frozen=True)
class Search:
    """What locating a dataset found: each place looked at, with the format detected there."""

    looked: list[tuple[Path, str | None]]

    @property
    def found(self) -> tuple[Path, str] | None:
        """The first place holding the data, and its format."""
        return next(((root, fmt) for root, fmt in self.looked if fmt), None)


def search(spec: DatasetSpec, data_root: Path | None, cache_dir: Path) -> Search:
    """Try every candidate root with each of the spec's formats, in order."""
    looked = []
    for root in candidate_roots(spec, data_root, cache_dir):
        detected = next(
            (
                fmt
                for fmt in spec.formats
                if fmt in FORMATS
                and not FORMATS.meta(fmt).generated
                and reader(fmt).detect(root, spec.params)
            ),
            None,
        )
        looked.append((root, detected))
    return Search(looked)


def locate(spec: DatasetSpec, result: Search) -> Source:
    """Read the dataset's item table (every row checked; nothing decoded yet) where `result`
    of `search` found it, or say where it was looked for."""
    if result.found is None:
        places = "\n  ".join(str(root) for root, _ in result.looked)
        downloads = (
            f" `bench data download {spec.name}` fetches it ({', '.join(spec.downloads)})."
            if spec.downloads
            else ""
        )
        help_texts = " ".join(FORMATS.meta(f).layout_help for f in spec.formats if f in FORMATS)
        raise BenchError(
            f"{spec.name}: no data found in a format of {', '.join(spec.formats)}. Looked in:"
            f"\n  {places}\n{help_texts}{downloads}".rstrip()
        )
    root, fmt = result.found
    return reader(fmt).read(root, spec.classes, spec.params, spec.name)


def load_imageset(
    spec: DatasetSpec,
    image_size: int,
    *,
    cache_dir: Path,
    data_root: Path | None = None,
    progress: bool = True,
    skip_bad: bool = False,
) -> ImageSet:
    """Load `spec` at `image_size`×`image_size` as uint8 tensors (decoded data is cached under
    `cache_dir`, keyed by the source files' content, the item table and the size)."""
    cache = ImageCache(cache_dir)
    if spec.formats and FORMATS.meta(spec.formats[0]).generated:  # once per size, then cached
        fmt = spec.formats[0]
        key = stable_hash({fmt: spec.params, "size": image_size, "code": data_code()})
        return cache.get(key, lambda: generator(fmt)(spec, image_size))
    source = locate(spec, search(spec, data_root, cache_dir))
    present = sorted(set(source.table["label"]))
    if len(present) < 2:
        raise BenchError(
            f"{spec.name}: the data at {source.root} holds {len(present)} class(es) "
            f"({', '.join(present) or 'none'}); a classification benchmark needs at least 2."
        )
    fingerprint = data_fingerprint(source, image_size, skip_bad)
    key = stable_hash({"data": fingerprint, "code": data_code()})
    imageset = cache.get(
        key, lambda: _decode(source, spec.name, fingerprint, image_size, skip_bad, progress)
    )
    provenance = {
        "format": source.format,
        "root": str(source.root.resolve()),
        "content": source.content,
        **imageset.provenance,
    }
    return imageset.with_provenance(provenance)


def data_fingerprint(source: Source, image_size: int, skip_bad: bool) -> str:
    """The identity of the data in run ids: the source files' content, the item table (a
    label taken from a folder name is in no file's bytes), the classes and the image size;
    `--skip-bad` adds a field because it may change what is kept. The decoded-tensor cache
    key adds the digest of the code that decodes (`bench.core.code_digest.data_code`)."""
    columns = ["item_id", "label", "group", "split"]
    fields = {
        "format": source.format,
        "content": source.content,
        "items": stable_hash(source.table[columns].to_numpy().tolist()),
        "size": image_size,
        "classes": source.class_names,
    }
    if skip_bad:
        fields["skip_bad"] = True
    return stable_hash(fields)


def _decode(
    source: Source, name: str, fingerprint: str, image_size: int, skip_bad: bool, progress: bool
) -> ImageSet:
    decoded = source.decode(image_size, skip_bad, progress)
    table = source.table[decoded.kept]
    index = {c: k for k, c in enumerate(source.class_names)}
    given = tuple(table["split"]) if (table["split"] != "").any() else ()
    return ImageSet(
        name=name,
        images=decoded.images,
        labels=torch.tensor([index[c] for c in table["label"]], dtype=torch.int64),
        item_ids=list(table["item_id"]),
        groups=list(table["group"]),
        class_names=source.class_names,
        fingerprint=fingerprint,
        given_splits=given,
        provenance={"skipped": decoded.skipped} if decoded.skipped else {},
    )
