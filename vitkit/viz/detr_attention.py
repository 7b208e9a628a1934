"""Where each DETR object query looks: decoder cross-attention mapped back to image pixels.

Carion et al. 2020 (Fig. 6) show that the last decoder layer's cross-attention of a query concentrates on the
extremities of the object it predicts. The weights ``(B, nh, Q, h·w)`` over the backbone's feature grid are
averaged over heads, laid out on the ``h × w`` grid and upsampled to the input resolution; each feature cell covers
a ``stride × stride`` block of pixels (32 for a ResNet), which bilinear upsampling spreads smoothly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitkit.layers import capture_attention
from vitkit.viz.figures import pyplot, save_figure


def query_attention_to_pixels(weights: Tensor, grid: tuple[int, int], image_size: tuple[int, int]) -> Tensor:
    """Map cross-attention ``weights`` ``(B, nh, Q, h·w)`` (or head-averaged ``(B, Q, h·w)``) to ``(B, Q, H, W)``.

    The feature grid ``(h, w)`` covers the whole (padded) input of ``image_size`` ``(H, W)``. Each query's map is
    scaled to ``[0, 1]`` (its maximum is 1).
    """
    if weights.ndim == 4:
        weights = weights.float().mean(dim=1)  # (B, Q, h·w)
    B, Q, N = weights.shape
    h, w = grid
    if h * w != N:
        raise ValueError(f"grid {grid} has {h * w} cells but the attention covers {N} keys")
    maps = weights.reshape(B * Q, 1, h, w)  # (B·Q, 1, h, w)
    maps = F.interpolate(maps, size=tuple(image_size), mode="bilinear", align_corners=False)
    maps = maps.reshape(B, Q, *image_size)  # (B, Q, H, W)
    return maps / maps.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def detr_cross_attention_maps(
    model: nn.Module, images: Tensor, pixel_mask: Tensor | None = None, *, layer: int = -1
) -> tuple[dict, Tensor]:
    """Run a vitkit ``DETR`` and return ``(outputs, maps)``: its output dict and the cross-attention of decoder
    ``layer`` (default the last) of every query over the image, ``(B, Q, H, W)`` in ``[0, 1]``."""
    grid: list[tuple[int, int]] = []
    hook = model.input_proj.register_forward_hook(lambda m, i, out: grid.append(tuple(out.shape[-2:])))
    try:
        with capture_attention(model.decoder[layer].cross_attn) as captured:
            outputs = model(images, pixel_mask)
    finally:
        hook.remove()
    weights = next(iter(captured.values()))[0]  # (B, nh, Q, h·w)
    return outputs, query_attention_to_pixels(weights, grid[0], images.shape[-2:])


@torch.no_grad()
def detr_top_query_maps(model: nn.Module, images: Tensor, pixel_mask: Tensor | None = None) -> Tensor:
    """``(B, H, W)``: for each image, the cross-attention map of its most confident object query."""
    outputs, maps = detr_cross_attention_maps(model, images, pixel_mask)
    scores = outputs["pred_logits"].float().softmax(-1)[..., :-1].amax(-1)  # (B, Q), no-object excluded
    best = scores.argmax(dim=1)  # (B,)
    return maps[torch.arange(len(best)), best]


def query_attention_figure(
    image: np.ndarray,
    maps: Tensor,
    boxes: Sequence[Sequence[float]],
    titles: Sequence[str],
    out: str | Path,
) -> Path:
    """Save the image with the selected queries' boxes, then one panel per query: its cross-attention map over
    the image with its box (as in Carion et al. 2020, Fig. 6).

    ``image`` ``uint8 (H, W, 3)``; ``maps`` ``(k, H, W)`` in [0, 1]; ``boxes`` ``k`` xyxy pixel boxes; ``titles``
    one per query (e.g. "dog 0.97").
    """
    from matplotlib.patches import Rectangle

    plt = pyplot()

    k = len(boxes)
    fig, axes = plt.subplots(1, k + 1, figsize=(3 * (k + 1), 3.2), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].imshow(image)
    axes[0, 0].set_title("detections", fontsize=9)
    for i, (box, title) in enumerate(zip(boxes, titles, strict=True)):
        x0, y0, x1, y1 = (float(v) for v in box)
        colour = plt.cm.tab10(i % 10)
        for ax in (axes[0, 0], axes[0, i + 1]):
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=colour, linewidth=1.5))
        axes[0, i + 1].imshow(image)
        axes[0, i + 1].imshow(maps[i].cpu().numpy(), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
        axes[0, i + 1].set_title(title, fontsize=9, color=colour)
    fig.tight_layout()
    return save_figure(fig, out, dpi=110)
