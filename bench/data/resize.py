"""Resizing decoded images to the square tensors models train on."""

from __future__ import annotations

import torch


def square_resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to `size` (antialiased), then centre-crop to size×size.

    Keeps the aspect ratio: dermoscopy lesions sit near the centre, so the crop loses borders,
    not lesion.
    """
    # Imported here: torchvision costs about 2 s to import, which a worker reading decoded
    # images from the cache never needs.
    import torchvision.transforms.v2.functional as TF

    resized = TF.resize(image, [size], antialias=True)
    return TF.center_crop(resized, [size, size])
