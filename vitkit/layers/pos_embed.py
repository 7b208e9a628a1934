"""Position embeddings: fixed 2-D sin-cos tables and resampling of learned tables to new grids.

The sin-cos table follows the 1-D form of Vaswani et al. 2017 (§3.5), applied to the row and the column each with
half the channels, as in MoCo v3 / MAE.
"""

from __future__ import annotations

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
