"""Contrastive denoising queries for RT-DETR training (DN-DETR, Li et al. 2022; DINO's contrastive variant,
Zhang et al. 2023, §3.3; RT-DETR's defaults).

Each ground-truth object yields, in every group, a positive query (its box jittered by less than half its size,
trained to reconstruct it) and a negative one (jittered by between one and two halves, trained as background). Some
labels are flipped to a random class. The queries enter the decoder before the matching queries with the attention
mask of ``layers.masks.denoising_groups``, so matching never sees them; their losses use the known assignment
instead of Hungarian matching. Groups: ``num_denoising // max objects per image`` (at least 1), so the number of
denoising queries stays near ``num_denoising`` whatever the images hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vitkit import boxes as box_ops
from vitkit.layers import masks
from vitkit.models.rtdetr_decoder import inverse_sigmoid


@dataclass
class DenoisingGroup:
    """What the model and the criterion need of one batch's denoising queries.

    ``queries`` ``(B, D, C)`` class embeddings of the (noised) labels; ``reference_logits`` ``(B, D, 4)`` the noised
    boxes before the sigmoid; ``attn_mask`` ``(D + Q, D + Q)`` boolean, True = may attend; ``matched`` one
    ``(query_idx, target_idx)`` pair per image: the positive queries and the objects they reconstruct.
    """

    queries: Tensor
    reference_logits: Tensor
    attn_mask: Tensor
    matched: list[tuple[Tensor, Tensor]]
    num_groups: int


def make_denoising_group(targets: list[dict[str, Tensor]], class_embed: nn.Embedding, *, num_queries: int,
                         num_denoising: int = 100, label_noise_ratio: float = 0.5, box_noise_scale: float = 1.0
                         ) -> DenoisingGroup | None:
    """Denoising queries for ``targets`` (``labels`` ``(n,)``, ``boxes`` ``(n, 4)`` normalised cxcywh per image),
    or ``None`` when ``num_denoising`` is 0 or no image has an object. ``class_embed`` has ``K + 1`` rows, the last
    for padding. Noise comes from the global random generator."""
    counts = [len(t["labels"]) for t in targets]
    if num_denoising <= 0 or max(counts, default=0) == 0:
        return None
    K, device = class_embed.num_embeddings - 1, targets[0]["boxes"].device
    n, B = max(counts), len(targets)
    groups = max(num_denoising // n, 1)
    labels = torch.full((B, n), K, dtype=torch.int32, device=device)
    boxes = torch.zeros(B, n, 4, device=device)
    valid = torch.zeros(B, n, dtype=torch.bool, device=device)
    for i, t in enumerate(targets):
        labels[i, : counts[i]], boxes[i, : counts[i]], valid[i, : counts[i]] = t["labels"], t["boxes"], True
    labels, boxes, valid = labels.tile(1, 2 * groups), boxes.tile(1, 2 * groups, 1), valid.tile(1, 2 * groups)
    negative = (torch.arange(2 * n * groups, device=device) % (2 * n) >= n)[None, :, None].float()  # (1, D, 1)
    if label_noise_ratio > 0:
        flip = torch.rand_like(labels, dtype=torch.float) < label_noise_ratio * 0.5
        labels = torch.where(flip & valid, torch.randint_like(flip, 0, K, dtype=labels.dtype), labels)
    if box_noise_scale > 0:
        corners = box_ops.cxcywh_to_xyxy(boxes)
        half = boxes[..., 2:].tile(1, 1, 2) * 0.5 * box_noise_scale  # (B, D, 4)
        sign = torch.randint_like(boxes, 0, 2) * 2.0 - 1.0
        part = torch.rand_like(boxes)
        part = (part + 1.0) * negative + part * (1 - negative)  # negatives move by 1–2 halves, positives by < 1
        boxes = box_ops.convert((corners + sign * part * half).clamp(0.0, 1.0), "xyxy", "cxcywh")
    positive = valid & (negative[..., 0] == 0)  # (B, D)
    matched = [(positive[i].nonzero()[:, 0], torch.arange(counts[i], device=device).tile(groups)) for i in range(B)]
    return DenoisingGroup(queries=class_embed(labels), reference_logits=inverse_sigmoid(boxes),
                          attn_mask=masks.denoising_groups(groups, 2 * n, num_queries, device=device),
                          matched=matched, num_groups=groups)
