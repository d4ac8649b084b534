"""Serving uint8 image batches to the device without stalling it.

On a GPU the whole uint8 training set is kept on the device when it fits in a share of the
free memory (HAM10000 at 224 px is 1.5 GB: it fits on any current card), so a batch is one
index on the device. Otherwise the images stay in pinned host memory and each batch is
gathered on the host and copied on a side stream while the previous batch computes. On the
CPU, batches are plain indexing. In every case the order of the images in a batch, and so the
result, is the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

RESIDENT_SHARE = 0.4  # of the free device memory the training images may take


def fits_on_device(nbytes: int, free_bytes: int, share: float = RESIDENT_SHARE) -> bool:
    """Whether `nbytes` of images may live on a device with `free_bytes` free."""
    return nbytes <= share * free_bytes


@dataclass
class BatchSource:
    """Training images and labels, served as device batches in a given order.

    `mode`: `host` (the CPU: plain indexing), `resident` (all on the device) or `streamed`
    (pinned host memory, the next batch copied ahead on a side stream).
    """

    images: torch.Tensor
    labels: torch.Tensor
    device: torch.device
    mode: str

    @classmethod
    def on(cls, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> BatchSource:
        """The fastest way to serve these images on `device`."""
        if device.type != "cuda":
            return cls(images, labels, device, "host")
        free, _ = torch.cuda.mem_get_info(device)
        if fits_on_device(images.numel() * images.element_size(), free):
            return cls(images.to(device), labels.to(device), device, "resident")
        return cls(images.pin_memory(), labels.pin_memory(), device, "streamed")

    def batches(
        self, order: torch.Tensor, batch_size: int, steps: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(images, labels) on the device for `steps` batches of `order` (a host tensor)."""
        chunks = [order[i * batch_size : (i + 1) * batch_size] for i in range(steps)]
        if self.mode == "resident":
            on_device = order.to(self.device, non_blocking=True)
            for i in range(steps):
                index = on_device[i * batch_size : (i + 1) * batch_size]
                yield self.images[index], self.labels[index]
        elif self.mode == "streamed":
            yield from self._streamed(chunks)
        else:
            for index in chunks:
                yield self.images[index].to(self.device), self.labels[index].to(self.device)

    def _streamed(self, chunks: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Gather each batch into pinned memory and copy it on a side stream, one batch
        ahead of the one being computed."""
        stream = torch.cuda.Stream(self.device)

        def start(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.cuda.Event]:
            images = torch.index_select(self.images, 0, index).pin_memory()
            labels = torch.index_select(self.labels, 0, index).pin_memory()
            with torch.cuda.stream(stream):
                copied = (
                    images.to(self.device, non_blocking=True),
                    labels.to(self.device, non_blocking=True),
                )
                ready = torch.cuda.Event()
                ready.record(stream)
            return copied[0], copied[1], ready

        pending = start(chunks[0]) if chunks else None
        for i in range(len(chunks)):
            assert pending is not None
            images, labels, ready = pending
            pending = start(chunks[i + 1]) if i + 1 < len(chunks) else None
            torch.cuda.current_stream(self.device).wait_event(ready)
            images.record_stream(torch.cuda.current_stream(self.device))
            labels.record_stream(torch.cuda.current_stream(self.device))
            yield images, labels
