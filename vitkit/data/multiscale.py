"""Multi-scale detection training as RT-DETR trains (Zhao et al. 2024): each training batch resized to a scale drawn
from a list (``VisionDataModule(multiscale_sizes=[480, 512, ..., 800])`` for 640-pixel training).

A size ``s`` of the list is the shorter side the batch trains at, where ``image_size`` ``S`` is the shorter side at
evaluation: every image of the batch is resized by ``s / S`` (aspect ratio kept, bilinear), the batch is padded again
and its pixel mask rebuilt. Boxes are normalised ``(cx, cy, w, h)`` relative to each image, so they stay valid as
they are; each target's ``"size"`` becomes the resized one. (RT-DETR's own pipeline squashes images to ``s × s``;
vitkit's detection transforms keep the aspect ratio, so its scales do too.)

Which size a batch gets is a function of ``(seed, epoch, optimiser step within the epoch)`` alone (``draw_size``),
like every random choice of the training data (``vitkit.data.sampling``): reproducible from the seed, continued by a
resumed run, and the same for every process's share of one global batch and for the accumulated batches of one
step. The training loader tags each batch with its size (``"scale"``) in the main process; the datamodule resizes
it on the device it trains on (``on_after_batch_transfer``), where the resize is cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vitkit.data.errors import DataError

SALT = 0x5CA1E  # keeps the size's seed apart from a sample's augmentation seed (seed, epoch, index)


def check_sizes(sizes: Sequence[int] | None, task: str) -> list[int] | None:
    """The sizes as a list, or a ``DataError`` for an empty list, a size that is not a positive integer, or a task
    other than detection."""
    if sizes is None:
        return None
    sizes = list(sizes)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise DataError(f"multiscale_sizes={sizes!r} must be a non-empty list of positive integers",
                        "e.g. --data.multiscale_sizes '[480, 512, 544, 576, 608, 640]'")
    if task != "detection":
        raise DataError(f"multiscale_sizes resizes detection batches, not task={task!r}", "remove it")
    return sizes


def draw_size(sizes: Sequence[int], *, seed: int, epoch: int, step: int) -> int:
    """The size of the batches of optimiser ``step`` (counted from 0 within ``epoch``)."""
    rng = np.random.default_rng([seed, epoch, step, SALT])
    return int(sizes[int(rng.integers(len(sizes)))])


def rescale_batch(batch: dict[str, Any], size: int, image_size: int) -> dict[str, Any]:
    """A padded detection batch (``vitkit.data.collate.pad_collate``) with every image resized by ``size /
    image_size``: ``"image"`` ``(B, C, H', W')``, ``"pixel_mask"`` ``(B, H', W')`` and each target's ``"size"``
    updated; boxes unchanged (normalised to each image)."""
    images, mask = batch["image"], batch["pixel_mask"]  # (B, C, H, W), (B, H, W)
    factor = size / image_size
    heights = mask.any(dim=2).sum(dim=1).tolist()  # real rows per image
    widths = mask.any(dim=1).sum(dim=1).tolist()  # real columns per image
    new = [(max(1, round(h * factor)), max(1, round(w * factor))) for h, w in zip(heights, widths, strict=True)]
    H, W = max(h for h, _ in new), max(w for _, w in new)
    out = images.new_zeros(images.shape[0], images.shape[1], H, W)  # (B, C, H', W')
    out_mask = torch.zeros(images.shape[0], H, W, dtype=torch.bool, device=mask.device)  # (B, H', W')
    for i, ((h, w), (nh, nw)) in enumerate(zip(zip(heights, widths, strict=True), new, strict=True)):
        region = images[i:i + 1, :, :h, :w]  # (1, C, h, w)
        out[i, :, :nh, :nw] = F.interpolate(region, size=(nh, nw), mode="bilinear", align_corners=False)[0]
        out_mask[i, :nh, :nw] = True
    targets = []
    for t, (nh, nw) in zip(batch["targets"], new, strict=True):
        t = dict(t)
        if "size" in t:
            t["size"] = torch.tensor([nh, nw], dtype=torch.long, device=torch.as_tensor(t["size"]).device)
        targets.append(t)
    return {**batch, "image": out, "pixel_mask": out_mask, "targets": targets}


class BatchScales:
    """The training loader's tag: ``batch["scale"] = size`` drawn for the batch's step, until ``plain_from_epoch``
    (the no-augmentation epochs, which train at the evaluation size). ``accumulate``: batches per optimiser step."""

    def __init__(self, sizes: Sequence[int] | None, *, seed: int, accumulate: int = 1,
                 plain_from_epoch: int | None = None) -> None:
        self.sizes, self.seed, self.accumulate, self.plain_from_epoch = sizes, seed, accumulate, plain_from_epoch

    def __call__(self, batch: Any, epoch: int, batch_index: int) -> Any:
        if not self.sizes or (self.plain_from_epoch is not None and epoch >= self.plain_from_epoch):
            return batch
        return {**batch, "scale": draw_size(self.sizes, seed=self.seed, epoch=epoch,
                                            step=batch_index // self.accumulate)}
