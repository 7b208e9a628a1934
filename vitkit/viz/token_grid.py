"""Where tokens sit on the image, and values on a token grid resampled to image pixels.

A token made by a stack of convolutions is centred where its receptive field is: a convolution with kernel ``k``,
stride ``s`` and padding ``p`` over a grid whose token ``i`` is centred at pixel coordinate ``a + b·i`` makes a grid
centred at ``a' + b'·i`` with ``a' = a + b·((k − 1)/2 − p)`` and ``b' = b·s``. Pixel ``y`` has its centre at
``y + 0.5``. Resampling with these exact centres (rather than stretching the grid over the image) keeps the map
aligned with the picture for ViT's patches and for CvT's overlapping, padded, strided grids alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class TokenGrid:
    """A grid of ``shape = (h, w)`` tokens; token ``(i, j)`` is centred at pixel coordinates
    ``(offset[0] + spacing[0]·i, offset[1] + spacing[1]·j)``."""

    shape: tuple[int, int]
    offset: tuple[float, float] = (0.5, 0.5)  # the image itself: pixel centres
    spacing: tuple[float, float] = (1.0, 1.0)

    def conv(self, kernel_size: int, stride: int, padding: int) -> TokenGrid:
        """The grid a ``kernel_size × kernel_size`` convolution with ``stride`` and ``padding`` makes from this one."""
        h, w = ((n + 2 * padding - kernel_size) // stride + 1 for n in self.shape)
        shift = (kernel_size - 1) / 2 - padding
        offset = tuple(a + b * shift for a, b in zip(self.offset, self.spacing, strict=True))
        return TokenGrid((h, w), offset, tuple(b * stride for b in self.spacing))

    def centre(self, i: int, j: int) -> tuple[float, float]:
        """Pixel coordinates (y, x) of token ``(i, j)``'s centre."""
        return self.offset[0] + self.spacing[0] * i, self.offset[1] + self.spacing[1] * j


def image_grid(height: int, width: int) -> TokenGrid:
    return TokenGrid((height, width))


def to_pixels(values: Tensor, grid: TokenGrid, image_size: tuple[int, int]) -> Tensor:
    """Values on ``grid`` ``(..., h, w)`` → ``(..., H, W)`` at every pixel, bilinear between token centres (edge
    values held beyond the outermost centres)."""
    (h, w), (H, W) = grid.shape, image_size
    lead = values.shape[:-2]
    flat = values.reshape(-1, 1, h, w).float()  # (M, 1, h, w)
    ys = (torch.arange(H, dtype=torch.float32) + 0.5 - grid.offset[0]) / grid.spacing[0]  # grid coordinates
    xs = (torch.arange(W, dtype=torch.float32) + 0.5 - grid.offset[1]) / grid.spacing[1]
    # grid_sample with align_corners=True maps -1 / +1 to the first / last token centre.
    gy = 2 * ys / max(h - 1, 1) - 1 if h > 1 else torch.zeros_like(ys)
    gx = 2 * xs / max(w - 1, 1) - 1 if w > 1 else torch.zeros_like(xs)
    sample_at = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
    sample_at = sample_at.expand(flat.shape[0], H, W, 2)
    out = F.grid_sample(flat, sample_at, mode="bilinear", padding_mode="border", align_corners=True)  # (M, 1, H, W)
    return out.reshape(*lead, H, W)
