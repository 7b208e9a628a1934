"""One entry point for attention maps over the input image, whatever the family."""

from __future__ import annotations

from torch import Tensor, nn


def attention_maps(model: nn.Module, images: Tensor) -> Tensor:
    """Per-image relevance ``(B, H, W)`` in [0, 1] of each pixel for the model's prediction.

    ViT: attention rollout through all blocks (Abnar & Zuidema 2020). CvT: the class token's attention over the
    last stage's strided key grid, placed on the image pixels (``viz.cvt_attention``). DETR: the last decoder
    layer's cross-attention of the most confident object query (``viz.detr_attention`` has every query's map).
    """
    from vitkit.models.cvt import CvT
    from vitkit.models.detr import DETR
    from vitkit.models.vit import VisionTransformer
    from vitkit.viz.cvt_attention import cvt_relevance_maps
    from vitkit.viz.rollout import vit_rollout_maps

    if isinstance(model, VisionTransformer):
        return vit_rollout_maps(model, images)
    if isinstance(model, CvT):
        return cvt_relevance_maps(model, images)
    if isinstance(model, DETR):
        from vitkit.viz.detr_attention import detr_top_query_maps

        return detr_top_query_maps(model, images)
    raise TypeError(f"no attention-map method for {type(model).__name__}; supported: VisionTransformer, CvT, DETR")


def attention_method(model: nn.Module) -> str:
    """How ``attention_maps`` computes the maps for ``model``, for figure titles."""
    from vitkit.models.cvt import CvT
    from vitkit.models.detr import DETR

    if isinstance(model, CvT):
        return "last-stage class-token attention"
    if isinstance(model, DETR):
        return "decoder cross-attention of the top query"
    return "attention rollout"
