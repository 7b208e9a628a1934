"""COCO box evaluation with pycocotools' ``COCOeval`` (Lin et al. 2014): AP averaged over IoU 0.50:0.95, AP at
0.50 and 0.75, and AP for small (< 32²), medium and large (> 96²) objects — the numbers DETR reports (Table 1).

Ground truth comes either from the dataset's own annotation file (a ``pycocotools.coco.COCO``) or is built from
the targets of the evaluated batches (``ground_truth_from_targets``): every image seen, with or without boxes, so
that false positives on empty images count.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vitkit import boxes as box_ops

log = logging.getLogger(__name__)
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def gt_records(targets: Sequence[dict[str, Any]]) -> list[dict]:
    """Per-image ground-truth records from batch targets (normalised cxcywh boxes + ``orig_size``), in pixels xywh."""
    records = []
    for t in targets:
        h, w = (int(v) for v in t["orig_size"])
        size = torch.tensor([[h, w]], dtype=torch.float32)
        boxes = box_ops.denormalise(t["boxes"].detach().float().cpu()[None], size, "xywh")[0]  # (n, 4) pixels
        records.append({"image_id": int(t["image_id"]), "height": h, "width": w, "boxes": boxes.tolist(),
                        "labels": t["labels"].tolist()})
    return records


def ground_truth_from_targets(records: Sequence[dict], category_ids: Sequence[int], class_names: Sequence[str]):
    """A ``COCO`` ground truth from ``gt_records`` (labels mapped to ``category_ids``; area = box area)."""
    from pycocotools.coco import COCO

    images, annotations = {}, []
    for r in records:
        images[r["image_id"]] = {"id": r["image_id"], "height": r["height"], "width": r["width"]}
        for box, label in zip(r["boxes"], r["labels"], strict=True):
            annotations.append({"id": len(annotations) + 1, "image_id": r["image_id"], "bbox": box,
                                "area": box[2] * box[3], "category_id": int(category_ids[label]), "iscrowd": 0})
    categories = [{"id": int(c), "name": str(n)} for c, n in zip(category_ids, class_names, strict=True)]
    gt = COCO()
    gt.dataset = {"images": list(images.values()), "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def evaluate(gt, results: list[dict], *, image_ids: Sequence[int] | None = None) -> dict[str, float]:
    """``COCOeval`` box metrics of ``results`` (COCO results entries) against ``gt``, restricted to ``image_ids``
    (default: all ground-truth images). No detections at all gives zeros."""
    return evaluate_per_class(gt, results, image_ids=image_ids)[0]


@dataclass(frozen=True)
class PerClass:
    """Per-category results read from ``COCOeval``'s precision array ``(T IoUs, R recalls, K, areas, max dets)``
    at all areas and 100 detections per image. NaN for a category without ground truth.

    ``ap``: mean precision over IoU 0.50:0.95 and the 101 recall thresholds (each category's share of COCO's AP);
    ``ap50`` / ``ap75``: the same at one IoU; ``precision``: ``(K, R)`` at IoU 0.50 against ``recall`` ``(R,)``.
    """

    category_ids: tuple[int, ...]
    ap: np.ndarray
    ap50: np.ndarray
    ap75: np.ndarray
    recall: np.ndarray
    precision: np.ndarray


def evaluate_per_class(gt, results: list[dict], *,
                       image_ids: Sequence[int] | None = None) -> tuple[dict[str, float], PerClass | None]:
    """``evaluate``'s metrics and the per-category table (``None`` when there are no detections)."""
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {name: 0.0 for name in STAT_NAMES}, None
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):  # pycocotools prints its progress and table
        dt = gt.loadRes([dict(r) for r in results])
        ev = COCOeval(gt, dt, iouType="bbox")
        if image_ids is not None:
            ev.params.imgIds = sorted(set(int(i) for i in image_ids))
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    log.info("COCO evaluation:\n%s", quiet.getvalue())
    metrics = {name: float(v) for name, v in zip(STAT_NAMES, ev.stats[:6], strict=True)}
    return metrics, _per_class(ev)


def _per_class(ev) -> PerClass:
    precision = ev.eval["precision"][:, :, :, 0, -1]  # (T, R, K): all areas, the largest max-detections
    valid = precision > -1  # -1: a category without ground truth
    masked = np.where(valid, precision, np.nan)

    def mean(x: np.ndarray) -> np.ndarray:  # over every axis but the category one (last)
        x = x.reshape(-1, x.shape[-1])
        counts = (~np.isnan(x)).sum(axis=0)
        return np.divide(np.nansum(x, axis=0), counts, out=np.full(x.shape[1], np.nan), where=counts > 0)

    iou = np.asarray(ev.params.iouThrs)
    at = {t: int(np.argmin(np.abs(iou - t))) for t in (0.5, 0.75)}
    return PerClass(tuple(int(c) for c in ev.params.catIds), mean(masked), mean(masked[at[0.5]]),
                    mean(masked[at[0.75]]), np.asarray(ev.params.recThrs), masked[at[0.5]].T)


def as_tensor_sizes(targets: Sequence[dict[str, Any]]) -> Tensor:
    """``(B, 2)`` original ``(height, width)`` of the batch's images."""
    return torch.tensor([[int(v) for v in t["orig_size"]] for t in targets], dtype=torch.float32)
