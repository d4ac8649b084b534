"""Dataset formats, registered by name (`FORMATS`). A format read from disk names a `Reader`
(`detect(root, params)`, `read(root, classes, params, name) -> Source`); a generated one
(`synthetic`) names its `load(spec, image_size) -> ImageSet`. Each entry declares the `[params]`
a spec may set for it and says where its data are, readable without importing the format's
code. Their code is part of the decoded-image cache key (`bench.core.code_digest`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.core.registry import Registry

if TYPE_CHECKING:
    from bench.data.imageset import ImageSet
    from bench.data.source import Reader
    from bench.data.specs import DatasetSpec


@dataclass(frozen=True)
class FormatInfo:
    """What a spec and `bench data info` know of a format before reading: where its data are
    expected (`layout_help`), the `[params]` keys it reads, and whether it is generated in
    memory rather than read."""

    layout_help: str
    params: tuple[str, ...] = ()
    generated: bool = False


FORMATS: Registry[FormatInfo] = Registry("format")
FORMATS.add(
    "ham10000",
    "bench.data.formats.ham10000:READER",
    FormatInfo(
        "Expected layout (as the Kaggle copy of HAM10000 ships it): ROOT/HAM10000_metadata.csv "
        "and ROOT/HAM10000_images_part_1/ISIC_*.jpg, ROOT/HAM10000_images_part_2/ISIC_*.jpg. "
        "Point --data-root or BENCH_DATA_ROOT at ROOT."
    ),
)
FORMATS.add(
    "isic2018",
    "bench.data.formats.isic2018:READER",
    FormatInfo(
        "Expected ROOT/ISIC2018_Task3_Training_Input/*.jpg and "
        "ROOT/ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv "
        "(as the ISIC 2018 archives unpack); point --data-root at ROOT."
    ),
)
FORMATS.add(
    "medmnist",
    "bench.data.formats.medmnist:READER",
    FormatInfo(
        "Expected ROOT/NAME.npz or ROOT/NAME_{64,128,224}.npz as MedMNIST ships them.",
        params=("medmnist",),  # the [params.medmnist] table: file, labels
    ),
)
FORMATS.add(
    "imagefolder",
    "bench.data.formats.imagefolder:READER",
    FormatInfo(
        "Expected ROOT/<class>/<image> or ROOT/{train,val,test}/<class>/<image>, every class "
        "folder holding images; point --data-root at ROOT.",
        params=("group_pattern",),
    ),
)
FORMATS.add(
    "csv",
    "bench.data.formats.csvfile:READER",
    FormatInfo(
        "Expected a CSV with columns path,label[,group][,split] (`csv:FILE`).",
        params=("file",),  # the listing's file name
    ),
)
FORMATS.add(
    "synthetic",
    "bench.data.synthetic:load",
    FormatInfo(
        "generated in memory from a seed; nothing to look for.",
        params=("n_images", "imbalance_ratio", "difficulty", "seed"),
        generated=True,
    ),
)


def reader(name: str) -> Reader:
    """The reader of the disk format `name` (its module imported now)."""
    return FORMATS.builder(name)  # type: ignore[return-value]


def generator(name: str) -> Callable[[DatasetSpec, int], ImageSet]:
    """The loader of the generated format `name` (its module imported now)."""
    return FORMATS.builder(name)
