"""Serving uint8 image batches to the device without stalling it.

On a GPU the whole uint8 training set is kept on the device when it fits in a share of the
free memory (HAM10000 at 224 px is 1.5 GB: it fits on any current card), so a batch is one
index on the device. Otherwise the images stay in host memory and each batch is gathered into
a pinned buffer and copied on a side stream while the previous batch computes. On the
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
    (each batch gathered into a pinned buffer on the host and copied ahead on a side stream).
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
        return cls(images, labels, device, "streamed")

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
        """Gather each batch into one of two pinned buffers and copy it to the device on a
        side stream, one batch ahead of the one being computed. A buffer is refilled only
        once its previous copy has finished (an event recorded after it)."""
        if not chunks:
            return
        stream = torch.cuda.Stream(self.device)
        current = torch.cuda.current_stream(self.device)
        rows = max(len(chunk) for chunk in chunks)
        buffers = [
            (
                torch.empty((rows, *self.images.shape[1:]), dtype=self.images.dtype).pin_memory(),
                torch.empty(rows, dtype=self.labels.dtype).pin_memory(),
            )
            for _ in range(2)
        ]
        copied: list[torch.cuda.Event | None] = [None, None]

        def start(i: int) -> tuple[torch.Tensor, torch.Tensor, torch.cuda.Event]:
            slot, index = i % 2, chunks[i]
            if (previous := copied[slot]) is not None:
                previous.synchronize()  # the copy out of this buffer two batches ago
            images, labels = buffers[slot][0][: len(index)], buffers[slot][1][: len(index)]
            torch.index_select(self.images, 0, index, out=images)
            torch.index_select(self.labels, 0, index, out=labels)
            with torch.cuda.stream(stream):
                on_device = (
                    images.to(self.device, non_blocking=True),
                    labels.to(self.device, non_blocking=True),
                )
                ready = torch.cuda.Event()
                ready.record(stream)
            copied[slot] = ready
            return on_device[0], on_device[1], ready

        pending = start(0)
        for i in range(len(chunks)):
            images, labels, ready = pending
            if i + 1 < len(chunks):
                pending = start(i + 1)
            current.wait_event(ready)
            images.record_stream(current)  # allocated on the side stream, used on this one
            labels.record_stream(current)
            yield images, labels
