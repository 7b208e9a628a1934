"""One entry point for attention maps over the input image, whatever the family."""

from __future__ import annotations

from torch import Tensor, nn


def attention_maps(model: nn.Module, images: Tensor) -> Tensor:
    """Per-image relevance ``(B, H, W)`` in [0, 1] of each pixel for the model's prediction.

    ViT: attention rollout through all blocks (Abnar & Zuidema 2020). DETR: the last decoder layer's
    cross-attention of the most confident object query (``vitkit.viz.detr_attention`` has every query's map).
    """
    from vitkit.models.detr import DETR
    from vitkit.models.vit import VisionTransformer
    from vitkit.viz.rollout import vit_rollout_maps

    if isinstance(model, VisionTransformer):
        return vit_rollout_maps(model, images)
    if isinstance(model, DETR):
        from vitkit.viz.detr_attention import detr_top_query_maps

        return detr_top_query_maps(model, images)
    raise TypeError(f"no attention-map method for {type(model).__name__}; supported: VisionTransformer, DETR")
