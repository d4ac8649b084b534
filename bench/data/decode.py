"""Decoding image files into resized uint8 tensors, with bad files reported or skipped, and
the Source of a dataset made of image files."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from bench.core.errors import BenchError
from bench.core.files import hash_files
from bench.data.resize import square_resize
from bench.data.source import Decoded, Source


def read_rgb(path: object, min_size: int) -> torch.Tensor:
    """Decode an image file to a uint8 3×H×W tensor; grayscale is replicated to 3 channels.

    JPEG decoding is allowed to downscale by powers of two (PIL's draft mode) while both sides
    stay at least `min_size`, which makes full-resolution sources cheap to read.
    """
    with Image.open(path) as image:  # type: ignore[arg-type]
        image.draft("RGB", (min_size, min_size))
        array = np.asarray(image.convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def decode_files(
    table: pd.DataFrame, image_size: int, skip_bad: bool, progress: bool, name: str
) -> Decoded:
    """Decode and resize every `path` of `table` to image_size².

    An unreadable or truncated file raises an error naming it and the row that listed it,
    unless `skip_bad`, in which case it is left out and reported in `Decoded.skipped`.
    """
    images = torch.empty(len(table), 3, image_size, image_size, dtype=torch.uint8)
    kept = np.ones(len(table), dtype=bool)
    skipped = []
    rows = tqdm(
        zip(table["path"], table["origin"], strict=True),
        total=len(table),
        desc=f"decoding {name}",
        unit="img",
        leave=False,
        disable=not progress,
    )
    for i, (path, origin) in enumerate(rows):
        try:
            images[i] = square_resize(read_rgb(path, image_size), image_size)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
            if not skip_bad:
                raise BenchError(
                    f"{path} (listed at {origin}): cannot decode image ({error}). Replace the "
                    "file, remove its row, or rerun with --skip-bad to leave it out (recorded "
                    "in run.json)."
                ) from error
            kept[i] = False
            skipped.append({"path": str(path), "origin": str(origin), "error": str(error)})
    return Decoded(images[torch.from_numpy(kept)] if skipped else images, kept, skipped)


def file_source(
    fmt: str,
    root: Path,
    table: pd.DataFrame,
    classes: tuple[str, ...],
    listings: list[Path],
    name: str,
    notes: dict[str, Any] | None = None,
) -> Source:
    """A Source whose items are the image files in `table["path"]`; its content digest covers
    the `listings` (metadata files) and every image."""
    return Source(
        format=fmt,
        root=root,
        table=table,
        class_names=classes,
        content=hash_files([*listings, *table["path"]]),
        decode=partial(decode_files, table, name=name),
        notes=notes or {},
    )
