"""Dataset formats, by name. A format read from disk (`GENERATED = False`) offers
`detect(root, params)` and `read(root, classes, params, name) -> Source`; a generated one
(`synthetic`) offers `load(spec, image_size) -> ImageSet`. Each names the `[params]` a spec may
set (`PARAMS`) and says where its data are (`LAYOUT_HELP`). Their code is part of the
decoded-image cache key (`bench.core.code_digest`)."""

from __future__ import annotations

from types import ModuleType

from bench.data import synthetic
from bench.data.formats import csvfile, ham10000, imagefolder, isic2018, medmnist

FORMATS: dict[str, ModuleType] = {
    "ham10000": ham10000,
    "isic2018": isic2018,
    "medmnist": medmnist,
    "imagefolder": imagefolder,
    "csv": csvfile,
    "synthetic": synthetic,
}
