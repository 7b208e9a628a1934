"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers", §3).

Each layer's head-averaged attention ``A`` is mixed with the residual connection as ``0.5·A + 0.5·I`` and
re-normalised; the product over layers says how much each input token flows into each output token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitkit.layers import capture_attention


def attention_rollout(weights: list[Tensor], *, num_prefix_tokens: int, head_fusion: str = "mean") -> Tensor:
    """Rollout over layers ``weights[i]`` ``(B, nh, N, N)`` → relevance of each patch token ``(B, N - P)``.

    With a class token (``P ≥ 1``) the relevance is the class token's row; without one (average pooling) it is the
    mean over all rows, which is what the pooled feature sees.
    """
    fuse = {"mean": lambda w: w.mean(dim=1), "max": lambda w: w.amax(dim=1)}[head_fusion]
    B, _, N, _ = weights[0].shape
    eye = torch.eye(N, device=weights[0].device).expand(B, N, N)
    rollout = eye
    for w in weights:
        a = 0.5 * fuse(w.float()) + 0.5 * eye  # (B, N, N)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a @ rollout
    rows = rollout[:, 0] if num_prefix_tokens else rollout.mean(dim=1)  # (B, N)
    return rows[:, num_prefix_tokens:]


@torch.no_grad()
def vit_rollout_maps(model: nn.Module, images: Tensor) -> Tensor:
    """Attention rollout of a vitkit ViT, upsampled to the image: ``(B, H, W)``, each map scaled to [0, 1]."""
    H, W = images.shape[-2:]
    h, w = model.patch_embed.grid_size(H, W)
    with capture_attention(model) as captured:
        model.forward_features(images)  # every token through every block (forward() prunes the last one)
    weights = [calls[0] for calls in captured.values()]
    rel = attention_rollout(weights, num_prefix_tokens=model.num_prefix_tokens).reshape(-1, 1, h, w)
    maps = F.interpolate(rel, size=(H, W), mode="bilinear", align_corners=False)[:, 0]  # (B, H, W)
    lo = maps.amin(dim=(1, 2), keepdim=True)
    hi = maps.amax(dim=(1, 2), keepdim=True)
    return (maps - lo) / (hi - lo).clamp_min(1e-12)
