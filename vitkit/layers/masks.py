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
