"""Choosing the device to train on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.core.errors import BenchError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit choice must be available."""
    import torch  # here, so that the command line's choices come without it

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in DEVICE_CHOICES:
        raise BenchError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}.")
    if name == "cuda" and not torch.cuda.is_available():
        raise BenchError(
            "--device cuda was asked for but no CUDA GPU is visible; use --device cpu."
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise BenchError("--device mps was asked for but MPS is not available; use --device cpu.")
    return torch.device(name)
