"""Resizing decoded images to the square tensors models train on."""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF


def square_resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to `size` (antialiased), then centre-crop to size×size.

    Keeps the aspect ratio: dermoscopy lesions sit near the centre, so the crop loses borders,
    not lesion.
    """
    resized = TF.resize(image, [size], antialias=True)
    return TF.center_crop(resized, [size, size])
