"""CvT attention maps on image pixels.

In CvT the keys and values of a stage come from a strided depthwise convolution of its token map (Wu et al. 2021,
§3.2), so a query attends over a key grid ``stride_kv`` times coarser than the queries' own, and every stage's
grid is placed differently on the image (overlapping, padded embeddings). The weights are captured from the shared
``Attention`` and resampled from the key grid's exact token centres to the pixels (``viz.token_grid``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vitkit.layers import capture_attention
from vitkit.models.cvt import CvT
from vitkit.viz.token_grid import TokenGrid, image_grid, to_pixels


def cvt_grids(model: CvT, height: int, width: int) -> list[tuple[TokenGrid, TokenGrid]]:
    """Per stage, its token grid and its key/value grid, placed on a ``height × width`` image."""
    grid, out = image_grid(height, width), []
    for cfg in model.config.stages:
        grid = grid.conv(cfg.patch_size, cfg.patch_stride, cfg.patch_padding)
        out.append((grid, grid.conv(cfg.kernel_qkv, cfg.stride_kv, cfg.kernel_qkv // 2)))
    return out


@dataclass
class AttentionMaps:
    maps: Tensor  # (B, nh, H, W): attention of the chosen query over the key grid, on image pixels
    class_token_share: Tensor | None  # (B, nh): weight the query gives the class token (a key off the image)
    query_centre: tuple[float, float] | None  # pixel (y, x) of the query token; None for the class token / mean
    key_grid: TokenGrid


def cvt_attention_maps(
    model: CvT,
    images: Tensor,
    *,
    stage: int = -1,
    block: int = -1,
    query: tuple[int, int] | None = None,
) -> AttentionMaps:
    """Attention of one query of block ``block`` in stage ``stage`` over the image, for ``images`` ``(B, C, H, W)``.

    ``query`` is a token ``(i, j)`` of the stage's grid; ``None`` takes the class token when the stage has one, else
    the mean over all queries (where the block looks on average).
    """
    stage_idx = stage % len(model.stages)
    block_idx = block % len(model.stages[stage_idx].blocks)
    name = f"stages.{stage_idx}.blocks.{block_idx}.attn"
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture_attention(model) as store:
            model.forward_features(images)  # every query row (forward skips the last block's map queries)
    finally:
        model.train(was_training)
    weights = store[name][0]  # (B, nh, P + h·w, P + h'·w')
    grid, kv = cvt_grids(model, *images.shape[-2:])[stage_idx]
    P = model.stages[stage_idx].num_prefix_tokens
    if query is not None:
        i, j = query
        if not (0 <= i < grid.shape[0] and 0 <= j < grid.shape[1]):
            raise ValueError(f"query {query} is outside stage {stage_idx}'s {grid.shape[0]}×{grid.shape[1]} grid")
        row, centre = weights[:, :, P + i * grid.shape[1] + j], grid.centre(i, j)  # (B, nh, Nk)
    else:
        row, centre = (weights[:, :, 0], None) if P else (weights.mean(dim=2), None)
    on_grid = row[..., P:].unflatten(-1, kv.shape)  # (B, nh, h', w')
    maps = to_pixels(on_grid, kv, tuple(images.shape[-2:]))  # (B, nh, H, W)
    return AttentionMaps(maps, row[..., 0] if P else None, centre, kv)
