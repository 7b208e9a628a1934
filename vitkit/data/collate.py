"""Batching of formatted samples (dicts of tensors) into batch dicts.

Classification (and any task whose samples have equal shapes) stacks along a new batch dimension. Detection
(``pad_collate``), whose images differ in size and whose targets differ in length, pads images to a common size with
a pixel mask and keeps the targets as a list.
"""

from __future__ import annotations

import torch
from torch import Tensor


def stack_collate(samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """``[{key: (…)}] * B → {key: (B, …)}``; every sample must have the same keys and per-key shapes."""
    keys = samples[0].keys()
    return {key: torch.stack([s[key] for s in samples]) for key in keys}


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
