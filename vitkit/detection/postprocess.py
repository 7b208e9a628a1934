"""From DETR's outputs to detections in original image coordinates (Carion et al. 2020, §4: evaluation).

Each query's score is its highest class probability excluding no-object; its box is the predicted normalised
cxcywh box scaled by the ORIGINAL image size (the resize keeps the aspect ratio and boxes are relative to the
unpadded image, so scaling by the original size undoes both). Contiguous labels ``0..K-1`` are mapped back to the
dataset's category ids (COCO's ids are not contiguous) with ``label_to_category``.

Detectors with independent sigmoid scores and no no-object class (RT-DETR, ``activation="sigmoid"``) are read as
their official post-processing does: the ``Q`` best (query, class) pairs of each image, so a query may report
more than one class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from vitkit import boxes as box_ops


@torch.no_grad()
def postprocess(
    outputs: dict,
    orig_sizes: Tensor | Sequence[tuple[int, int]],
    *,
    box_format: box_ops.BoxFormat = "xyxy",
    label_to_category: Sequence[int] | None = None,
    threshold: float = 0.0,
    activation: Literal["softmax", "sigmoid"] = "softmax",
) -> list[dict[str, Tensor]]:
    """Per-image detections from ``outputs["pred_logits"]`` ``(B, Q, K+1 or K)`` and ``outputs["pred_boxes"]``
    ``(B, Q, 4)``.

    Args:
        orig_sizes: ``(B, 2)`` original ``(height, width)`` of each image.
        box_format: ``"xyxy"`` (drawing) or ``"xywh"`` (COCO results), in pixels.
        label_to_category: ``label_to_category[i]`` is the category id of contiguous label ``i``; identity if None.
        threshold: keep only detections with score above it.
        activation: ``"softmax"`` (DETR: ``K + 1`` logits, the last no-object) or ``"sigmoid"`` (RT-DETR: ``K``
            independent scores).

    Returns one dict per image: ``scores`` ``(n,)``, ``labels`` ``(n,)`` (category ids), ``boxes`` ``(n, 4)`` and
    ``queries`` ``(n,)`` (the index of the object query behind each detection), sorted by decreasing score.
    """
    logits, pred_boxes = outputs["pred_logits"].float(), outputs["pred_boxes"].float()
    sizes = torch.as_tensor(orig_sizes, dtype=torch.float32, device=logits.device).reshape(-1, 2)  # (B, 2)
    if sizes.shape[0] != logits.shape[0]:
        raise ValueError(f"{sizes.shape[0]} image sizes for a batch of {logits.shape[0]} predictions")
    boxes = box_ops.denormalise(pred_boxes, sizes, box_format)  # (B, Q, 4), pixels
    if activation == "sigmoid":
        K = logits.shape[-1]
        scores, pairs = logits.sigmoid().flatten(1).topk(logits.shape[1], dim=1)  # (B, Q) best (query, class) pairs
        labels, chosen = pairs % K, torch.div(pairs, K, rounding_mode="floor")
        boxes = boxes.gather(1, chosen[..., None].expand(-1, -1, 4))  # (B, Q, 4)
    else:
        K = logits.shape[-1] - 1
        scores, labels = logits.softmax(-1)[..., :-1].max(-1)  # (B, Q) each
        chosen = None
    if label_to_category is not None:
        mapping = torch.as_tensor(list(label_to_category), dtype=torch.long, device=labels.device)
        if mapping.numel() != K:
            raise ValueError(f"label_to_category has {mapping.numel()} entries but the model has {K} classes")
        labels = mapping[labels]
    results = []
    for i, (s, lab, b) in enumerate(zip(scores, labels, boxes, strict=True)):
        keep = torch.nonzero(s > threshold).flatten()
        keep = keep[s[keep].argsort(descending=True)]  # (n,)
        queries = keep if chosen is None else chosen[i, keep]
        results.append({"scores": s[keep], "labels": lab[keep], "boxes": b[keep], "queries": queries})
    return results


def to_coco_results(results: list[dict[str, Tensor]], image_ids: Sequence[int]) -> list[dict]:
    """COCO results-file entries ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``.

    ``results`` must come from ``postprocess(..., box_format="xywh", label_to_category=...)``.
    """
    if len(results) != len(image_ids):
        raise ValueError(f"{len(results)} results for {len(image_ids)} image ids")
    entries = []
    for image_id, r in zip(image_ids, results, strict=True):
        for score, label, box in zip(r["scores"].tolist(), r["labels"].tolist(), r["boxes"].tolist(), strict=True):
            entries.append({"image_id": int(image_id), "category_id": int(label),
                            "bbox": [float(v) for v in box], "score": float(score)})
    return entries
