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


def capture_cvt_attention(model: CvT, images: Tensor) -> dict[str, Tensor]:
    """``{"stages.{i}.blocks.{j}.attn": weights (B, nh, P + h·w, P + h'·w')}`` of every block, in eval mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture_attention(model) as store:
            model.forward_features(images)  # every query row (forward skips the last block's map queries)
    finally:
        model.train(was_training)
    return {name: calls[0] for name, calls in store.items()}


def cvt_attention_maps(
    model: CvT,
    images: Tensor,
    *,
    stage: int = -1,
    block: int = -1,
    query: tuple[int, int] | None = None,
    weights: dict[str, Tensor] | None = None,
) -> AttentionMaps:
    """Attention of one query of block ``block`` in stage ``stage`` over the image, for ``images`` ``(B, C, H, W)``.

    ``query`` is a token ``(i, j)`` of the stage's grid; ``None`` takes the class token when the stage has one, else
    the mean over all queries (where the block looks on average). ``weights`` reuses a ``capture_cvt_attention``.
    """
    stage_idx = stage % len(model.stages)
    block_idx = block % len(model.stages[stage_idx].blocks)
    weights = capture_cvt_attention(model, images) if weights is None else weights
    w = weights[f"stages.{stage_idx}.blocks.{block_idx}.attn"]  # (B, nh, P + h·w, P + h'·w')
    grid, kv = cvt_grids(model, *images.shape[-2:])[stage_idx]
    P = model.stages[stage_idx].num_prefix_tokens
    if query is not None:
        i, j = query
        if not (0 <= i < grid.shape[0] and 0 <= j < grid.shape[1]):
            raise ValueError(f"query {query} is outside stage {stage_idx}'s {grid.shape[0]}×{grid.shape[1]} grid")
        row, centre = w[:, :, P + i * grid.shape[1] + j], grid.centre(i, j)  # (B, nh, Nk)
    else:
        row, centre = (w[:, :, 0], None) if P else (w.mean(dim=2), None)
    on_grid = row[..., P:].unflatten(-1, kv.shape)  # (B, nh, h', w')
    maps = to_pixels(on_grid, kv, tuple(images.shape[-2:]))  # (B, nh, H, W)
    return AttentionMaps(maps, row[..., 0] if P else None, centre, kv)


def cvt_relevance_maps(model: CvT, images: Tensor) -> Tensor:
    """Where the prediction looks: ``(B, H, W)`` in [0, 1].

    The class token's attention (or, without one, the mean over queries: what mean pooling reads) in every block of
    the last stage, averaged over heads and blocks, on image pixels, each map scaled to [0, 1]. (Rollout across
    stages is not defined for CvT: every stage re-embeds the map with a convolution.)
    """
    weights = capture_cvt_attention(model, images)
    depth = len(model.stages[-1].blocks)
    maps = sum(cvt_attention_maps(model, images, block=b, weights=weights).maps.mean(dim=1) for b in range(depth))
    lo, hi = maps.amin(dim=(1, 2), keepdim=True), maps.amax(dim=(1, 2), keepdim=True)
    return (maps - lo) / (hi - lo).clamp_min(1e-12)  # (B, H, W)
