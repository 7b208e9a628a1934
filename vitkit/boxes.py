"""Bounding boxes: format conversions, areas, IoU and generalised IoU (Rezatofighi et al. 2019, Algorithm 1).

This is the one place in vitkit where box formats are converted. Boxes are ``(..., 4)`` tensors in one of three
formats:

- ``"xyxy"``: corners ``(x0, y0, x1, y1)`` — what IoU and GIoU are computed on;
- ``"xywh"``: top-left corner and size ``(x0, y0, w, h)`` — COCO annotations and results files;
- ``"cxcywh"``: centre and size ``(cx, cy, w, h)`` — what DETR predicts, normalised by the image size.

Every function is pure and works in the dtype it is given; callers that need fp32 (the matcher, the losses) cast
before calling.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
FORMATS: tuple[str, ...] = ("xyxy", "xywh", "cxcywh")


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


def xywh_to_xyxy(boxes: Tensor) -> Tensor:
    x0, y0, w, h = boxes.unbind(-1)
    return torch.stack([x0, y0, x0 + w, y0 + h], dim=-1)


def xyxy_to_xywh(boxes: Tensor) -> Tensor:
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([x0, y0, x1 - x0, y1 - y0], dim=-1)


_TO_XYXY = {"xyxy": lambda b: b, "xywh": xywh_to_xyxy, "cxcywh": cxcywh_to_xyxy}
_FROM_XYXY = {"xyxy": lambda b: b, "xywh": xyxy_to_xywh, "cxcywh": xyxy_to_cxcywh}


def convert(boxes: Tensor, src: BoxFormat, dst: BoxFormat) -> Tensor:
    """Convert ``boxes`` ``(..., 4)`` from format ``src`` to ``dst`` (any of ``xyxy``, ``xywh``, ``cxcywh``)."""
    for name in (src, dst):
        if name not in FORMATS:
            raise ValueError(f"unknown box format {name!r}; expected one of {FORMATS}")
    if boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have 4 coordinates in the last dimension, got shape {tuple(boxes.shape)}")
    if src == dst:
        return boxes
    return _FROM_XYXY[dst](_TO_XYXY[src](boxes))


def area(boxes: Tensor) -> Tensor:
    """Area of ``xyxy`` boxes ``(..., 4)`` → ``(...)``; inverted boxes have negative area (not clamped)."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _intersection_union(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Intersection and union of broadcast-compatible ``xyxy`` boxes ``(..., 4)``."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter, area(a) + area(b) - inter


def _enclosing_area(a: Tensor, b: Tensor) -> Tensor:
    lt = torch.minimum(a[..., :2], b[..., :2])
    rb = torch.maximum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def box_iou(a: Tensor, b: Tensor, *, eps: float = 1e-7) -> Tensor:
    """Pairwise IoU of ``xyxy`` boxes ``a`` ``(N, 4)`` and ``b`` ``(M, 4)`` → ``(N, M)``.

    ``eps`` keeps the ratio defined for two empty boxes (IoU 0 instead of NaN).
    """
    inter, union = _intersection_union(a[:, None, :], b[None, :, :])  # (N, M)
    return inter / union.clamp(min=eps)


def generalized_box_iou(a: Tensor, b: Tensor, *, eps: float = 1e-7) -> Tensor:
    """Pairwise GIoU ``IoU - |C \\ (A ∪ B)| / |C|`` (C = smallest enclosing box) → ``(N, M)``, in ``[-1, 1]``."""
    _check_xyxy(a, "a")
    _check_xyxy(b, "b")
    a, b = a[:, None, :], b[None, :, :]
    inter, union = _intersection_union(a, b)  # (N, M)
    hull = _enclosing_area(a, b)
    return inter / union.clamp(min=eps) - (hull - union) / hull.clamp(min=eps)


def generalized_box_iou_pairs(a: Tensor, b: Tensor, *, eps: float = 1e-7) -> Tensor:
    """GIoU of matched pairs: ``a`` and ``b`` both ``(N, 4)`` ``xyxy`` → ``(N,)`` (the diagonal, without the matrix)."""
    _check_xyxy(a, "a")
    _check_xyxy(b, "b")
    inter, union = _intersection_union(a, b)
    hull = _enclosing_area(a, b)
    return inter / union.clamp(min=eps) - (hull - union) / hull.clamp(min=eps)


def _check_xyxy(boxes: Tensor, name: str) -> None:
    # An inverted box (x1 < x0) gives a meaningless GIoU; it means the caller passed another format.
    if bool((boxes[..., 2:] < boxes[..., :2]).any()):
        raise ValueError(f"GIoU needs xyxy boxes with x1 >= x0 and y1 >= y0; {name} has inverted boxes "
                         f"(were cxcywh or xywh boxes passed without boxes.convert?)")
