"""The embedded dataset: procedural dermoscopy-like images with HAM10000's class imbalance.

Every image is a lesion on a skin-coloured background. All seven classes share that overall
look; they differ only in the *distribution* of subtle attributes (border irregularity, edge
softness, pigment darkness, redness, blue-grey veil, pigment network, dots, peripheral streaks,
a central white patch, colour variegation), loosely modelled on the dermoscopic criteria of the
HAM10000 diagnoses. Each image draws its attributes around its class mean with a spread scaled
by `difficulty`, so classes overlap. Nuisances vary independently of the class: position,
scale, aspect, rotation, skin tone, illumination gain and gradient, vignetting and sensor noise.

Generation is deterministic in `seed` and fully batched (no per-image Python drawing).
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from bench.core.errors import BenchError
from bench.data.imageset import ImageSet

if TYPE_CHECKING:
    from bench.data.specs import DatasetSpec

HAM10000_CLASSES = ("nv", "mel", "bkl", "bcc", "akiec", "vasc", "df")
HAM10000_COUNTS = (6705, 1113, 1099, 514, 327, 142, 115)

ATTRIBUTES = (
    "border",
    "softness",
    "darkness",
    "redness",
    "bluegrey",
    "network",
    "dots",
    "streaks",
    "white",
    "variegation",
)

# Class means of the attributes on a 0..1 scale, rows in HAM10000_CLASSES order.
CLASS_ATTRIBUTE_MEANS = torch.tensor(
    [
        #  bord  soft  dark  red   blue  net   dots  strk  white vari
        [0.15, 0.50, 0.55, 0.15, 0.05, 0.45, 0.15, 0.05, 0.05, 0.15],  # nv: regular, network
        [
            0.45,
            0.40,
            0.65,
            0.15,
            0.35,
            0.35,
            0.25,
            0.35,
            0.10,
            0.50,
        ],  # mel: irregular, veil, streaks
        [0.25, 0.25, 0.40, 0.15, 0.10, 0.10, 0.40, 0.10, 0.10, 0.25],  # bkl: sharp edge, milia dots
        [0.30, 0.50, 0.35, 0.40, 0.35, 0.05, 0.30, 0.15, 0.15, 0.30],  # bcc: pink, blue-grey ovoids
        [0.30, 0.60, 0.30, 0.45, 0.05, 0.05, 0.20, 0.05, 0.25, 0.25],  # akiec: red, scaly white
        [0.15, 0.40, 0.45, 0.60, 0.20, 0.05, 0.35, 0.05, 0.05, 0.20],  # vasc: red lacunae
        [0.20, 0.55, 0.35, 0.20, 0.05, 0.35, 0.10, 0.05, 0.30, 0.15],  # df: central white patch
    ]
)
ATTRIBUTE_SPREAD = 0.12
_CHUNK = 256


def class_counts(n_images: int, imbalance_ratio: float) -> list[int]:
    """Per-class image counts following HAM10000's frequency profile.

    The profile is bent in log space so that largest/smallest equals `imbalance_ratio`
    (HAM10000's own ratio, 6705/115 ≈ 58.3, leaves it unchanged), then scaled to `n_images`.
    """
    if imbalance_ratio < 1:
        raise BenchError(f"imbalance_ratio must be >= 1, got {imbalance_ratio}")
    freq = np.asarray(HAM10000_COUNTS, dtype=float)
    exponent = math.log(imbalance_ratio) / math.log(freq.max() / freq.min())
    profile = (freq / freq.max()) ** exponent
    counts = np.maximum(np.round(profile / profile.sum() * n_images), 1).astype(int)
    return [int(c) for c in counts]


def generate(
    counts: list[int], image_size: int, seed: int, difficulty: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render `counts[k]` images of class k; returns (uint8 N×3×S×S images, int64 labels).

    Images are shuffled so that classes are not stored in blocks.
    """
    if len(counts) != len(HAM10000_CLASSES):
        raise BenchError(
            f"synthetic data has {len(HAM10000_CLASSES)} classes, got {len(counts)} counts"
        )
    generator = torch.Generator().manual_seed(seed)
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    labels = labels[torch.randperm(len(labels), generator=generator)]
    chunks = [
        _render(labels[start : start + _CHUNK], image_size, difficulty, generator)
        for start in range(0, len(labels), _CHUNK)
    ]
    return torch.cat(chunks), labels


def fingerprint(images: torch.Tensor, labels: torch.Tensor) -> str:
    """Content digest of a generated set: changes whenever the generator's output does."""
    digest = hashlib.sha256(images.numpy().tobytes())
    digest.update(labels.numpy().tobytes())
    return digest.hexdigest()[:12]


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, 1, 1, generator=generator)


def _render(
    labels: torch.Tensor, size: int, difficulty: float, generator: torch.Generator
) -> torch.Tensor:
    """Render one chunk at twice the target size, then average-pool (anti-aliasing)."""
    n, res = len(labels), 2 * size
    noise = torch.randn(n, len(ATTRIBUTES), generator=generator)
    attrs = (CLASS_ATTRIBUTE_MEANS[labels] + difficulty * ATTRIBUTE_SPREAD * noise).clamp(0, 1)
    a = {name: attrs[:, i, None, None] for i, name in enumerate(ATTRIBUTES)}

    axis = torch.linspace(-1, 1, res)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    x, y = x.expand(n, res, res), y.expand(n, res, res)

    # Nuisance geometry: centre, scale, aspect, rotation.
    cx, cy = (
        0.15 * torch.randn(n, 1, 1, generator=generator),
        0.15 * torch.randn(n, 1, 1, generator=generator),
    )
    radius = _uniform(n, 0.32, 0.62, generator)
    aspect = _uniform(n, 0.7, 1.0, generator)
    theta = _uniform(n, 0.0, 2 * math.pi, generator)
    u = torch.cos(theta) * (x - cx) + torch.sin(theta) * (y - cy)
    v = (-torch.sin(theta) * (x - cx) + torch.cos(theta) * (y - cy)) / aspect
    rho, phi = torch.sqrt(u**2 + v**2), torch.atan2(v, u)

    # Border: radius modulated by random low harmonics, amplitude set by `border`.
    wobble = torch.zeros_like(phi)
    for k in range(2, 6):
        amp = torch.randn(n, 1, 1, generator=generator) / k
        phase = _uniform(n, 0.0, 2 * math.pi, generator)
        wobble = wobble + amp * torch.sin(k * phi + phase)
    edge_radius = radius * (1 + 0.45 * a["border"] * wobble).clamp(min=0.3)
    alpha = torch.sigmoid((edge_radius - rho) / (radius * (0.03 + 0.15 * a["softness"])))
    rel = rho / edge_radius  # 0 at the centre, 1 on the border

    # Pigment: darkness varied over the lesion by `variegation`.
    ph1, ph2 = _uniform(n, 0, 6.3, generator), _uniform(n, 0, 6.3, generator)
    dark = (
        a["darkness"]
        + 0.5 * a["variegation"] * torch.sin(3 * u / radius + ph1) * torch.sin(3 * v / radius + ph2)
    ).clamp(0, 1)
    light_brown = torch.tensor([0.72, 0.52, 0.40]).view(1, 3, 1, 1)
    dark_brown = torch.tensor([0.28, 0.16, 0.10]).view(1, 3, 1, 1)
    red = torch.tensor([0.78, 0.26, 0.30]).view(1, 3, 1, 1)
    blue_grey = torch.tensor([0.45, 0.50, 0.62]).view(1, 3, 1, 1)
    white = torch.tensor([0.93, 0.89, 0.86]).view(1, 3, 1, 1)
    lesion = light_brown + (dark_brown - light_brown) * dark[:, None]
    lesion = lesion + (red - lesion) * (0.8 * a["redness"])[:, None]
    veil_dir = _uniform(n, 0, 2 * math.pi, generator)
    veil = (
        a["bluegrey"] * torch.sigmoid(4 * torch.cos(phi - veil_dir)) * (1 - 0.5 * rel).clamp(0, 1)
    )
    lesion = lesion + (blue_grey - lesion) * veil[:, None]

    # Textures: pigment network, dots/globules, peripheral streaks, central white patch.
    freq = _uniform(n, 5.0, 8.0, generator) / radius
    network = a["network"] * (torch.sin(freq * u) * torch.sin(freq * v)) ** 2
    centres = (torch.rand(n, 12, 2, generator=generator) - 0.5) * 1.4 * radius[..., 0, None]
    d2 = (u[:, None] - centres[..., 0, None, None]) ** 2 + (
        v[:, None] - centres[..., 1, None, None]
    ) ** 2
    dots = a["dots"] * torch.exp(-d2 / (2 * (0.06 * radius[:, None]) ** 2)).amax(dim=1)
    n_streaks = torch.randint(8, 14, (n, 1, 1), generator=generator)
    streaks = (
        a["streaks"]
        * torch.sin(n_streaks * phi).clamp(min=0) ** 4
        * torch.sigmoid((rel - 0.7) * 12)
    )
    patch = a["white"] * torch.exp(-((rho / (0.4 * radius)) ** 2))
    shade = (1 - 0.45 * network - 0.5 * streaks)[:, None]
    dot_colour = dark_brown + (red - dark_brown) * a["redness"][:, None]
    lesion = lesion * shade
    lesion = lesion + (dot_colour - lesion) * (0.9 * dots)[:, None]
    lesion = lesion + (white - lesion) * (0.8 * patch)[:, None]

    # Skin background with tone variation and low-frequency mottling.
    tone = torch.tensor([0.86, 0.66, 0.56]).view(1, 3, 1, 1) + 0.05 * torch.randn(
        n, 3, 1, 1, generator=generator
    )
    mottle = (
        0.03
        * torch.sin(_uniform(n, 1, 4, generator) * x + ph2)
        * torch.cos(_uniform(n, 1, 4, generator) * y + ph1)
    )
    skin = tone + mottle[:, None]
    image = skin + (lesion - skin) * alpha[:, None]

    # Illumination: gain, linear gradient, dermoscope vignette, sensor noise.
    gain = _uniform(n, 0.75, 1.15, generator)
    gx, gy = (
        0.15 * torch.randn(n, 1, 1, generator=generator),
        0.15 * torch.randn(n, 1, 1, generator=generator),
    )
    vignette = _uniform(n, 0.0, 2.5, generator) * (torch.sqrt(x**2 + y**2) - 0.9).clamp(min=0)
    light = (gain * (1 + gx * x + gy * y) * (1 - vignette)).clamp(min=0)
    image = image * light[:, None] + 0.02 * torch.randn(image.shape, generator=generator)
    image = F.avg_pool2d(image.clamp(0, 1), 2)
    return (image * 255).round().to(torch.uint8)


def load(spec: DatasetSpec, image_size: int) -> ImageSet:
    """The image set a `synthetic` spec describes (its `[params]`), at `image_size` px."""
    if spec.classes and tuple(spec.classes) != HAM10000_CLASSES:
        raise BenchError(
            f"{spec.path or spec.name}: the synthetic generator draws HAM10000's seven classes; "
            f"set classes = {list(HAM10000_CLASSES)} (or leave them out)."
        )
    params = spec.params
    counts = class_counts(
        int(params.get("n_images", 2400)), float(params.get("imbalance_ratio", 58.3))
    )
    seed, difficulty = int(params.get("seed", 0)), float(params.get("difficulty", 1.0))
    images, labels = generate(counts, image_size, seed, difficulty)
    ids = [f"syn-{i:06d}" for i in range(len(labels))]
    return ImageSet(
        name=spec.name,
        images=images,
        labels=labels,
        item_ids=ids,
        groups=ids,
        class_names=HAM10000_CLASSES,
        fingerprint=fingerprint(images, labels),
        provenance={
            "generator": "bench.data.synthetic",
            "counts": counts,
            "seed": seed,
            "difficulty": difficulty,
        },
    )
