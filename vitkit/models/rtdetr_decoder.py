"""RT-DETR's decoder (Zhao et al. 2024, §4.3–4.4; Deformable DETR's iterative refinement, Zhu et al. 2021, §4.2):
queries attend to themselves on the shared ``Attention`` and to the multi-level memory with deformable attention
around their current box; after every layer a box head refines the box in logit space and a class head scores it.

Every layer's boxes become the next layer's reference boxes with the gradient stopped, as in Deformable DETR; the
box a layer reports keeps the gradient through the previous layer's (undetached) box, as the official RT-DETR code
does. The query positions are an MLP of the reference box.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vitkit.layers import Attention, Mlp, MultiScaleDeformableAttention
from vitkit.layers.checkpointing import run_block


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """``log(x / (1 - x))`` with ``x`` clamped to ``[eps, 1 - eps]`` (as the reference implementations)."""
    x = x.clamp(0, 1)
    return (x.clamp(min=eps) / (1 - x).clamp(min=eps)).log()


class PredictionMLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them (DETR's box head)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = x.relu()
        return x


class DecoderLayer(nn.Module):
    """Post-norm: ``x = norm1(x + self_attn(x + qpos, x + qpos, x))``, ``x = norm2(x + deform_attn(x + qpos, box,
    memory))``, ``x = norm3(x + mlp(x))``."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, *, num_levels: int, num_points: int,
                 drop: float = 0.0, fused_attn: bool = True) -> None:
        super().__init__()
        self.attn = Attention(dim, num_heads, attn_drop=drop, fused=fused_attn)
        self.drop1 = nn.Dropout(drop)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = MultiScaleDeformableAttention(dim, num_heads, num_levels, num_points)
        self.drop2 = nn.Dropout(drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, ffn_dim, act_layer=nn.ReLU, drop=drop)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: Tensor, query_pos: Tensor, boxes: Tensor, memory: Tensor, shapes: list[tuple[int, int]],
                *, mask: Tensor | None = None) -> Tensor:
        """``x``, ``query_pos`` ``(B, Q, C)``; ``boxes`` ``(B, Q, 4)`` normalised cxcywh; ``memory`` ``(B, N, C)``
        over the levels of ``shapes``; ``mask`` (True = may attend) between queries ``(Q, Q)``."""
        qk = x + query_pos
        x = self.norm1(x + self.drop1(self.attn(qk, qk, x, mask=mask)))
        x = self.norm2(x + self.drop2(self.cross_attn(x + query_pos, boxes[:, :, None], memory, shapes)))
        return self.norm3(x + self.mlp(x))


class RTDETRDecoder(nn.Module):
    """Layers plus the per-layer heads: ``forward(...) -> (logits (L, B, Q, K), boxes (L, B, Q, 4))``."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, depth: int, num_classes: int, *, num_levels: int,
                 num_points: int, drop: float = 0.0, fused_attn: bool = True) -> None:
        super().__init__()
        self.layers = nn.ModuleList([
            DecoderLayer(dim, num_heads, ffn_dim, num_levels=num_levels, num_points=num_points, drop=drop,
                         fused_attn=fused_attn)
            for _ in range(depth)
        ])
        self.query_pos_head = PredictionMLP(4, 2 * dim, dim, num_layers=2)
        self.class_heads = nn.ModuleList([nn.Linear(dim, num_classes) for _ in range(depth)])
        self.box_heads = nn.ModuleList([PredictionMLP(dim, dim, 4, num_layers=3) for _ in range(depth)])
        self.grad_checkpointing = False  # recompute each layer in the backward pass (set by RTDETR)

    def forward(self, x: Tensor, reference_logits: Tensor, memory: Tensor, shapes: list[tuple[int, int]], *,
                mask: Tensor | None = None, last_only: bool = False) -> tuple[Tensor, Tensor]:
        """``x`` ``(B, Q, C)`` initial queries; ``reference_logits`` ``(B, Q, 4)`` initial boxes before the sigmoid
        (no gradient flows into them); ``mask`` ``(Q, Q)`` boolean, True = may attend. Returns every layer's logits
        and boxes stacked, or only the last layer's (``L = 1``) with ``last_only``."""
        reference = reference_logits.detach().sigmoid()  # (B, Q, 4)
        previous = reference
        logits, boxes = [], []
        for i, layer in enumerate(self.layers):
            x = run_block(layer, x, self.query_pos_head(reference), reference, memory, shapes, mask=mask,
                          checkpoint=self.grad_checkpointing)
            delta = self.box_heads[i](x)
            refined = (delta + inverse_sigmoid(reference)).sigmoid()
            last = i == len(self.layers) - 1
            if not last_only or last:
                boxes.append((delta + inverse_sigmoid(previous)).sigmoid())  # == refined, gradient via previous
                logits.append(self.class_heads[i](x))
            previous, reference = refined, refined.detach()
        return torch.stack(logits), torch.stack(boxes)  # (L, B, Q, K), (L, B, Q, 4)
