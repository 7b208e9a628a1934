"""Block-wise local self-attention on the shared ``Attention`` (Parmar et al. 2018, §3.3, Fig. 2).

The sequence, in generation order, is cut into query blocks of ``bs`` positions. Each block attends to its memory,
a fixed list of ``M`` key positions around it, under the block's slice of ``masks.local_1d`` / ``masks.local_2d``.
All blocks go through one ``Attention`` call with the blocks folded into the batch — queries ``(B·nb, bs, C)`` over
memories ``(B·nb, M, C)`` — so time and memory grow with N·M instead of N². The result equals ``Attention`` over the
whole sequence with the dense mask of the same function (tested).

``LocalLayout.one_d`` builds 1-D local attention (a block plus ``flange`` positions before it), ``LocalLayout.two_d``
the 2-D variant (a rectangle of ``block`` pixels with a ``flange`` above, left and right; positions in block-raster
order, see ``block_raster_order``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitkit.layers import masks
from vitkit.layers.attention import Attention


def block_raster_order(grid: tuple[int, int], block: tuple[int, int]) -> Tensor:
    """``order[p]`` = raster index (``row·W + col``) of generation position ``p`` in block-raster order ``(H·W,)``."""
    row, col = masks.block_raster_coords(torch.arange(grid[0] * grid[1], device="cpu"), grid, block)
    return row * grid[1] + col


class LocalLayout(nn.Module):
    """Where each query block looks, and the block-wise attention over it.

    Buffers: ``key_pos`` ``(nb, M)`` — the generation positions of each block's memory, ``-1`` outside the image —
    and ``block_mask`` ``(nb, bs, M)``. ``window`` is the longest look-back any query needs (``t`` minus the earliest
    key ``t`` may see, plus one): a KV cache holding the last ``window`` positions serves every step of sampling.
    ``contiguous`` says every query sees exactly the keys ``first_visible[t] .. t`` (1-D), so a cache trimmed to
    them needs no mask; otherwise (2-D) ``step_mask`` selects the visible keys among those cached.
    """

    def __init__(self, key_pos: Tensor, mask_fn: Callable[[Tensor, Tensor], Tensor], block_size: int) -> None:
        super().__init__()
        nb = key_pos.shape[0]
        query_pos = torch.arange(nb * block_size, device=key_pos.device).view(nb, block_size)  # (nb, bs)
        block_mask = mask_fn(query_pos, key_pos)  # (nb, bs, M)
        self.register_buffer("key_pos", key_pos, persistent=False)
        self.register_buffer("block_mask", block_mask, persistent=False)
        self.mask_fn = mask_fn
        self.block_size = block_size
        beyond = key_pos.new_tensor(nb * block_size)
        first = torch.where(block_mask, key_pos[:, None, :], beyond).min(dim=-1).values  # (nb, bs) earliest key seen
        self.window = int((query_pos - first).max()) + 1
        # 1-D local attention sees an unbroken run of keys, first .. t: a cache trimmed to it needs no mask.
        self.contiguous = bool((block_mask.sum(dim=-1) == query_pos - first + 1).all())
        self.first_visible = first.flatten().tolist()  # per position, for trimming a cache while sampling

    @classmethod
    def one_d(cls, seq_len: int, block_size: int, flange: int) -> LocalLayout:
        """1-D local attention over ``seq_len`` positions; memory = ``flange`` positions before the block + block."""
        if seq_len % block_size:
            raise ValueError(f"local_1d: block_size={block_size} does not divide the sequence length {seq_len}")
        starts = torch.arange(0, seq_len, block_size, device="cpu")[:, None]  # (nb, 1); CPU even under meta
        key_pos = starts - flange + torch.arange(flange + block_size, device="cpu")  # (nb, M)
        key_pos = key_pos.clamp(min=-1)  # before the start: padding
        return cls(key_pos, functools.partial(masks.local_1d, block_size=block_size, flange=flange), block_size)

    @classmethod
    def two_d(cls, grid: tuple[int, int], block: tuple[int, int], flange: tuple[int, int]) -> LocalLayout:
        """2-D local attention on a ``grid`` ``(H, W)`` with query ``block`` ``(h, w)`` and ``flange`` ``(fh, fw)``."""
        (gh, gw), (bh, bw), (fh, fw) = grid, block, flange
        if gh % bh or gw % bw:
            raise ValueError(f"local_2d: query block {block} does not tile the {gh}×{gw} grid of positions")
        gen_of_raster = torch.empty(gh * gw, dtype=torch.long, device="cpu")
        gen_of_raster[block_raster_order(grid, block)] = torch.arange(gh * gw, device="cpu")
        corners = block_raster_order(grid, block)[:: bh * bw]  # raster index of each block's top-left position
        r0, c0 = (corners // gw)[:, None, None], (corners % gw)[:, None, None]  # (nb, 1, 1)
        rows = r0 - fh + torch.arange(fh + bh, device="cpu")[None, :, None]  # (nb, fh + bh, 1)
        cols = c0 - fw + torch.arange(bw + 2 * fw, device="cpu")[None, None, :]  # (nb, 1, bw + 2·fw)
        inside = (rows >= 0) & (rows < gh) & (cols >= 0) & (cols < gw)  # (nb, fh + bh, bw + 2·fw)
        raster = rows.clamp(0, gh - 1) * gw + cols.clamp(0, gw - 1)  # (nb, fh + bh, bw + 2·fw)
        key_pos = torch.where(inside, gen_of_raster[raster], -1).flatten(1)  # (nb, M)
        mask_fn = functools.partial(masks.local_2d, grid=grid, block=block, flange=flange)
        return cls(key_pos, mask_fn, bh * bw)

    @property
    def memory_size(self) -> int:
        return self.key_pos.shape[1]

    def dense_mask(self, n: int) -> Tensor:
        """The same attention pattern as one ``(n, n)`` mask over the first ``n`` positions (for tests)."""
        return self.mask_fn(torch.arange(n, device=self.key_pos.device), None)

    def step_mask(self, t: int, first_key: int) -> Tensor:
        """Mask ``(1, t + 1 - first_key)`` of query ``t`` over the keys at positions ``first_key .. t`` (a KV cache)."""
        device = self.key_pos.device
        q = torch.tensor([t], device=device)
        return self.mask_fn(q, torch.arange(first_key, t + 1, device=device))  # (1, Nk)

    def forward(self, attn: Attention, x: Tensor) -> Tensor:
        """Local self-attention of ``x`` ``(B, n, C)``, ``n`` a multiple of the block size, block by block."""
        B, n, C = x.shape
        bs = self.block_size
        if n % bs or n > self.key_pos.shape[0] * bs:
            raise ValueError(f"sequence of {n} positions does not fit the layout ({bs}-position blocks)")
        nb, M = n // bs, self.memory_size
        key_pos = self.key_pos[:nb]
        index = key_pos.masked_fill((key_pos < 0) | (key_pos >= n), n)  # (nb, M): slot n is a zero stand-in
        padded = F.pad(x, (0, 0, 0, 1))  # (B, n + 1, C)
        memory = padded[:, index].reshape(B * nb, M, C)  # (B·nb, M, C)
        queries = x.reshape(B * nb, bs, C)  # (B·nb, bs, C)
        mask = self.block_mask[:nb].expand(B, nb, bs, M).reshape(B * nb, 1, bs, M)  # (B·nb, 1, bs, M)
        out = attn(queries, memory, memory, mask=mask)  # (B·nb, bs, C)
        return out.reshape(B, n, C)  # (B, n, C)
