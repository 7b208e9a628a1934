"""Boolean attention masks, the one convention of vitkit: ``True`` = the query may attend to the key.

Every mask is broadcastable to ``(B, nh, Nq, Nk)``. Conventions from elsewhere (DETR's ``True`` = padding,
``nn.MultiheadAttention``'s float masks) are converted once, at the model boundary, with the functions here.
"""

from __future__ import annotations

import torch
from torch import Tensor


def causal(num_queries: int, num_keys: int | None = None, *, device: torch.device | str | None = None) -> Tensor:
    """Causal mask ``(Nq, Nk)``, aligned to the bottom right.

    Query ``i`` sits at absolute position ``Nk - Nq + i`` and may attend to every key at or before it. With
    ``Nq == Nk`` this is the usual lower triangle; with a KV cache (``Nq < Nk``) the new queries see the whole
    past. (``scaled_dot_product_attention(is_causal=True)`` aligns to the top left, which is wrong for the cache.)
    """
    num_keys = num_queries if num_keys is None else num_keys
    if num_keys < num_queries:
        raise ValueError(f"causal mask needs at least as many keys as queries, got Nq={num_queries}, Nk={num_keys}")
    q_pos = torch.arange(num_keys - num_queries, num_keys, device=device)
    k_pos = torch.arange(num_keys, device=device)
    return k_pos[None, :] <= q_pos[:, None]  # (Nq, Nk)


def key_padding(valid: Tensor) -> Tensor:
    """Mask ``(B, 1, 1, Nk)`` from ``valid`` ``(B, Nk)``, where ``True`` marks a real (non-padding) key."""
    if valid.dtype != torch.bool:
        raise TypeError(f"key_padding expects a boolean tensor, got {valid.dtype}")
    return valid[:, None, None, :]


def from_padding(padding: Tensor) -> Tensor:
    """Mask ``(B, 1, 1, Nk)`` from a padding mask ``(B, Nk)`` where ``True`` marks padding (DETR's convention)."""
    return key_padding(~padding)


def combine(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of the given masks (``None`` entries ignored); ``None`` when no mask is given."""
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else out & m
    return out


def _positions(pos: Tensor | int, device: torch.device | str | None) -> Tensor:
    return torch.arange(pos, device=device) if isinstance(pos, int) else pos


def local_1d(
    query_pos: Tensor | int,
    key_pos: Tensor | int | None = None,
    *,
    block_size: int,
    flange: int,
    device: torch.device | str | None = None,
) -> Tensor:
    """Masked 1-D local attention (Parmar et al. 2018, §3.3): mask ``(..., Nq, Nk)``.

    The sequence is cut into query blocks of ``block_size``; a query at position ``i`` of block
    ``b = i // block_size`` may attend to key ``j`` when ``b·block_size - flange <= j <= i``: its own block up to
    itself plus ``flange`` positions before the block. Positions are absolute; ``query_pos`` ``(..., Nq)`` and
    ``key_pos`` ``(..., Nk)`` broadcast over leading dims, an ``int`` stands for ``arange(n)`` and a negative key
    position marks padding (never attended). ``local_1d(N, block_size=..., flange=...)`` is the dense ``(N, N)`` mask;
    the block-wise computation asks for each block's queries over its memory.
    """
    q = _positions(query_pos, device)[..., :, None]  # (..., Nq, 1)
    k = _positions(query_pos if key_pos is None else key_pos, device)[..., None, :]  # (..., 1, Nk)
    start = torch.div(q, block_size, rounding_mode="floor") * block_size - flange
    return (k >= 0) & (k <= q) & (k >= start)  # (..., Nq, Nk)


def block_raster_coords(pos: Tensor, grid: tuple[int, int], block: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Row and column of generation positions ``pos`` in the 2-D variant's order.

    The ``grid`` ``(H, W)`` is tiled by ``block`` ``(h, w)`` query blocks; blocks are visited in raster order and the
    positions inside a block in raster order too (Parmar et al. 2018, §3.3), so position ``p`` lies in block
    ``p // (h·w)``.
    """
    (_, gw), (bh, bw) = grid, block
    blk, inner = torch.div(pos, bh * bw, rounding_mode="floor"), pos % (bh * bw)
    blocks_per_row = gw // bw
    row = torch.div(blk, blocks_per_row, rounding_mode="floor") * bh + torch.div(inner, bw, rounding_mode="floor")
    col = (blk % blocks_per_row) * bw + inner % bw
    return row, col


def local_2d(
    query_pos: Tensor | int,
    key_pos: Tensor | int | None = None,
    *,
    grid: tuple[int, int],
    block: tuple[int, int],
    flange: tuple[int, int],
    device: torch.device | str | None = None,
) -> Tensor:
    """Masked 2-D local attention (Parmar et al. 2018, §3.3): mask ``(..., Nq, Nk)``.

    Positions count in block-raster generation order (see ``block_raster_coords``). A query in the block whose top
    left corner is ``(r0, c0)`` may attend to key ``j`` when ``j`` comes no later in that order and lies in its
    memory rectangle: rows ``[r0 - flange[0], r0 + block[0])``, columns ``[c0 - flange[1], c0 + block[1] +
    flange[1])`` — the block extended up, left and right. Broadcasting, ``int`` and padding rules as ``local_1d``.
    """
    (bh, bw), (fh, fw) = block, flange
    if grid[0] % bh or grid[1] % bw:
        raise ValueError(f"block {block} does not tile the grid {grid}")
    q = _positions(query_pos, device)[..., :, None]  # (..., Nq, 1)
    k = _positions(query_pos if key_pos is None else key_pos, device)[..., None, :]  # (..., 1, Nk)
    q_row, q_col = block_raster_coords(q, grid, block)
    k_row, k_col = block_raster_coords(k.clamp(min=0), grid, block)
    r0, c0 = q_row - q_row % bh, q_col - q_col % bw  # the query block's corner
    in_rows = (k_row >= r0 - fh) & (k_row < r0 + bh)
    in_cols = (k_col >= c0 - fw) & (k_col < c0 + bw + fw)
    return (k >= 0) & (k <= q) & in_rows & in_cols  # (..., Nq, Nk)


def denoising_groups(num_groups: int, group_size: int, num_queries: int, *,
                     device: torch.device | str | None = None) -> Tensor:
    """Self-attention mask ``(D + Q, D + Q)`` of DN-DETR's denoising queries (Li et al. 2022, §3.4; RT-DETR's
    contrastive denoising): ``D = num_groups · group_size`` denoising queries come first, in groups, then the ``Q``
    matching queries.

    A denoising query may attend to its own group and to the matching queries; a matching query only to matching
    queries, so it never sees the ground truth the denoising queries are built from, and no group sees another.
    """
    D = num_groups * group_size
    idx = torch.arange(D + num_queries, device=device)
    group = torch.where(idx < D, torch.div(idx, max(group_size, 1), rounding_mode="floor"), -1)  # -1: matching
    return (group[:, None] == group[None, :]) | (group[None, :] < 0)  # (D + Q, D + Q)
