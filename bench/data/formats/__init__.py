"""On-disk dataset formats, by name: each module offers `detect(root, params)` and
`read(root, classes, params, name) -> Source` (their code is part of the decoded-image cache
key, see `bench.core.code_digest`)."""

from __future__ import annotations

from types import ModuleType

from bench.data.formats import csvfile, ham10000, imagefolder, isic2018, medmnist

FORMATS: dict[str, ModuleType] = {
    "ham10000": ham10000,
    "isic2018": isic2018,
    "medmnist": medmnist,
    "imagefolder": imagefolder,
    "csv": csvfile,
}
