"""Batching of formatted samples (dicts of tensors) into batch dicts.

Classification (and any task whose samples have equal shapes) stacks along a new batch dimension; classification
batches are normalised either in the workers (``normalise_collate``) or, 8-bit until then, on the device
(``pixel_collate``, then ``normalise_batch``: a quarter of the bytes through shared memory, pinned memory and the
host-to-device copy). Detection
(``pad_collate``), whose images differ in size and whose targets differ in length, pads images to a common size with
a pixel mask and keeps the targets as a list.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor
from torch.utils.data import get_worker_info


def stack_collate(samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """``[{key: (…)}] * B → {key: (B, …)}``; every sample must have the same keys and per-key shapes."""
    keys = samples[0].keys()
    return {key: torch.stack([s[key] for s in samples]) for key in keys}


def batch_buffer(shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """An empty tensor for a batch: in a DataLoader worker, in shared memory, as torch's own ``default_collate``
    makes it, so that handing the batch to the main process copies nothing."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    out = torch.empty(0, dtype=dtype)
    return out.new(out._typed_storage()._new_shared(math.prod(shape), device=out.device)).view(shape)


def pixel_collate(samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """``stack_collate`` with the ``"image"`` samples (``uint8 (C, H, W)``) stacked straight into a
    ``batch_buffer``: ``{"image": uint8 (B, C, H, W), ...}``, normalised later on the device (``normalise_batch``)."""
    images = [s["image"] for s in samples]
    batch = {key: torch.stack([s[key] for s in samples]) for key in samples[0] if key != "image"}
    batch["image"] = torch.stack(images, out=batch_buffer((len(images), *images[0].shape), images[0].dtype))
    return batch


def normalise_batch(pixels: Tensor, mean: tuple[float, ...], std: tuple[float, ...], *,
                    out: Tensor | None = None) -> Tensor:
    """``uint8 (B, C, H, W)`` → ``float32 (B, C, H, W)``: ``(pixel / 255 − mean) / std`` per channel
    (``vitkit.data.preprocessing.normalise``, the same arithmetic), on the pixels' device; into ``out`` (float32, the
    pixels' shape) when given."""
    out = pixels.to(torch.float32) if out is None else out.copy_(pixels)
    m, s = _scaled_statistics(tuple(mean), tuple(std), pixels.device)
    return out.sub_(m).div_(s)


@functools.lru_cache(maxsize=16)
def _scaled_statistics(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[Tensor, Tensor]:
    """``(255 · mean, 255 · std)`` as ``(1, C, 1, 1)`` tensors on ``device``, made once per device: building them
    for every batch would copy from the host, and wait for the device, at every step."""
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1) * 255  # (1, C, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1) * 255
    return m, s


def normalise_collate(samples: list[dict[str, Tensor]], mean: tuple[float, ...],
                      std: tuple[float, ...]) -> dict[str, Tensor]:
    """``stack_collate`` with the ``"image"`` samples (``uint8 (C, H, W)``) turned into one normalised ``float32 (B,
    C, H, W)`` batch (``normalise_batch``), written straight into a ``batch_buffer``."""
    batch = stack_collate(samples)
    pixels = batch["image"]  # (B, C, H, W) uint8
    batch["image"] = normalise_batch(pixels, mean, std, out=batch_buffer(tuple(pixels.shape), torch.float32))
    return batch


def pad_collate(samples: list[dict]) -> dict:
    """Detection batches: images of different sizes padded (bottom and right, with zeros) to the largest height and
    width of the batch, as DETR does.

    ``[{"image": (C, H_i, W_i), "target": dict}] * B → {"image": (B, C, H, W), "pixel_mask": bool (B, H, W) True on
    real pixels, "targets": [dict] * B}``. Padding with 0 after normalisation pads with the mean colour.
    """
    images = [s["image"] for s in samples]
    H, W = max(im.shape[1] for im in images), max(im.shape[2] for im in images)
    batch = images[0].new_zeros(len(images), images[0].shape[0], H, W)  # (B, C, H, W)
    pixel_mask = torch.zeros(len(images), H, W, dtype=torch.bool)  # (B, H, W)
    for i, image in enumerate(images):
        h, w = image.shape[1:]
        batch[i, :, :h, :w] = image
        pixel_mask[i, :h, :w] = True
    return {"image": batch, "pixel_mask": pixel_mask, "targets": [s["target"] for s in samples]}
