"""Grids of generated images, as a tensor (for TensorBoard) and as a PNG, with exact pixels (no resampling blur)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor


def image_grid(images: Tensor, *, nrow: int | None = None, scale: int | None = None, padding: int = 1) -> Tensor:
    """Tile ``images`` ``uint8 (B, C, H, W)`` into one ``uint8 (C, H', W')`` image, ``nrow`` images per row.

    Each image is enlarged ``scale`` times by pixel repetition (default: to at least 64 pixels), so 8×8 digits are
    visible; images are separated by ``padding`` pixels of mid grey.
    """
    if images.ndim != 4 or images.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images (B, C, H, W), got {images.dtype} {tuple(images.shape)}")
    B, C, H, W = images.shape
    scale = scale or max(1, math.ceil(64 / max(H, W)))
    nrow = nrow or math.ceil(math.sqrt(B))
    rows = math.ceil(B / nrow)
    big = images.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)  # (B, C, sH, sW)
    h, w = H * scale + padding, W * scale + padding
    grid = torch.full((C, rows * h + padding, nrow * w + padding), 128, dtype=torch.uint8)  # (C, H', W')
    for i in range(B):
        r, c = divmod(i, nrow)
        grid[:, padding + r * h: (r + 1) * h, padding + c * w: (c + 1) * w] = big[i]
    return grid


def save_image_grid(images: Tensor, path: str | Path, **kwargs) -> Path:
    """Write ``image_grid(images, **kwargs)`` as a PNG (grey for one channel, RGB for three); returns the path."""
    from PIL import Image

    grid = image_grid(images.cpu(), **kwargs)
    pixels = grid[0].numpy() if grid.shape[0] == 1 else grid.permute(1, 2, 0).numpy()  # (H', W'[, C])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path
