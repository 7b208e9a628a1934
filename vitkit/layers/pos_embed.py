"""Position embeddings: fixed 2-D sin-cos tables, DETR's masked sine encoding, and resampling of learned tables.

The sin-cos table follows the 1-D form of Vaswani et al. 2017 (§3.5), applied to the row and the column each with
half the channels, as in MoCo v3 / MAE. ``masked_sine_2d`` is DETR's variant (Carion et al. 2020, appendix A.4):
positions count only real pixels, so padding does not shift the encoding of the image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def sincos_2d(height: int, width: int, dim: int, *, temperature: float = 10000.0) -> Tensor:
    """Fixed 2-D sin-cos embedding ``(h·w, C)`` in raster order: the first half of channels encodes the column,
    the second half the row, each as ``[sin, cos]`` over ``C / 4`` frequencies."""
    if dim % 4:
        raise ValueError(f"sin-cos 2-D position embedding needs dim divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                                torch.arange(width, dtype=torch.float32), indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))  # (C/4,)
    out_c = cols.reshape(-1, 1) * omega[None]  # (h·w, C/4)
    out_r = rows.reshape(-1, 1) * omega[None]
    return torch.cat([out_c.sin(), out_c.cos(), out_r.sin(), out_r.cos()], dim=1)  # (h·w, C)


def masked_sine_2d(
    valid: Tensor,
    dim: int,
    *,
    temperature: float = 10000.0,
    normalize: bool = True,
    scale: float = 2 * math.pi,
    eps: float = 1e-6,
) -> Tensor:
    """DETR's sine position encoding ``(B, h·w, C)`` from ``valid`` ``(B, h, w)`` (True = real pixel, not padding).

    The row (column) position of a cell is the number of valid cells above (left of) it, inclusive; with
    ``normalize`` it is divided by the image's valid height (width) and multiplied by ``scale``, so every image spans
    ``(0, 2π]`` whatever its padding. The first ``C/2`` channels encode the row, the last ``C/2`` the column, each as
    interleaved ``[sin(p·ω_0), cos(p·ω_0), sin(p·ω_1), ...]`` with ``ω_i = temperature^(-4i/C)``. Computed in fp32.
    (For a padding mask in DETR's True = padding convention, pass ``~padding``.)
    """
    if dim % 4:
        raise ValueError(f"masked sine position encoding needs dim divisible by 4, got {dim}")
    if valid.dtype != torch.bool or valid.ndim != 3:
        raise TypeError(f"valid must be a boolean (B, h, w) mask, got {valid.dtype} of shape {tuple(valid.shape)}")
    rows = valid.cumsum(1, dtype=torch.float32)  # (B, h, w)
    cols = valid.cumsum(2, dtype=torch.float32)
    if normalize:
        rows = rows / (rows[:, -1:, :] + eps) * scale
        cols = cols / (cols[:, :, -1:] + eps) * scale
    omega = temperature ** (-torch.arange(dim // 4, dtype=torch.float32, device=valid.device) * 4 / dim)  # (C/4,)

    def encode(p: Tensor) -> Tensor:
        angles = p[..., None] * omega  # (B, h, w, C/4)
        return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # (B, h, w, C/2) interleaved

    return torch.cat([encode(rows), encode(cols)], dim=-1).flatten(1, 2)  # (B, h·w, C)


def resample_pos_embed(
    pos_embed: Tensor,
    new_size: tuple[int, int],
    old_size: tuple[int, int] | None = None,
    *,
    num_prefix_tokens: int = 1,
    mode: str = "bicubic",
    antialias: bool = True,
) -> Tensor:
    """Resample a learned table ``(1, P + h·w, C)`` to a ``new_size`` grid, keeping the ``P`` prefix tokens.

    ``old_size`` defaults to a square grid. Interpolation runs in float32 and casts back, so the result does not
    depend on the table's storage dtype.
    """
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    n = grid.shape[1]
    if old_size is None:
        side = int(n**0.5)
        if side * side != n:
            raise ValueError(f"cannot infer a square grid from {n} position embeddings; pass old_size")
        old_size = (side, side)
    if old_size[0] * old_size[1] != n:
        raise ValueError(f"old_size {old_size} does not match {n} position embeddings")
    if tuple(new_size) == tuple(old_size):
        return pos_embed
    dtype, C = pos_embed.dtype, pos_embed.shape[-1]
    grid = grid.float().reshape(1, *old_size, C).permute(0, 3, 1, 2)  # (1, C, h, w)
    grid = F.interpolate(grid, size=tuple(new_size), mode=mode, antialias=antialias, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, C).to(dtype)  # (1, h'·w', C)
    return torch.cat([prefix, grid], dim=1)
