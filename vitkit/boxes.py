"""Bounding boxes: format conversions, areas, IoU and generalised IoU (Rezatofighi et al. 2019, Algorithm 1).

This is the one place in vitkit where box formats are converted. Boxes are ``(..., 4)`` tensors in one of three
formats:

- ``"xyxy"``: corners ``(x0, y0, x1, y1)`` — what IoU and GIoU are computed on;
- ``"xywh"``: top-left corner and size ``(x0, y0, w, h)`` — COCO annotations and results files;
- ``"cxcywh"``: centre and size ``(cx, cy, w, h)`` — what DETR predicts, normalised by the image size.

Conversions, IoU and GIoU are torchvision's (``torchvision.ops``); what it lacks is here: the GIoU of matched pairs
without the pairwise matrix, clipping and normalising pixel boxes. Every function is pure, works in the dtype it is
given and never reads a value back to the host (they run inside the matcher and the losses); callers that need
fp32 cast before calling.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torchvision import ops

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
FORMATS: tuple[str, ...] = ("xyxy", "xywh", "cxcywh")


def convert(boxes: Tensor, src: BoxFormat, dst: BoxFormat) -> Tensor:
    """Convert ``boxes`` ``(..., 4)`` from format ``src`` to ``dst`` (any of ``xyxy``, ``xywh``, ``cxcywh``)."""
    for name in (src, dst):
        if name not in FORMATS:
            raise ValueError(f"unknown box format {name!r}; expected one of {FORMATS}")
    if boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have 4 coordinates in the last dimension, got shape {tuple(boxes.shape)}")
    if src == dst:
        return boxes
    return ops.box_convert(boxes, src, dst)


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    return ops.box_convert(boxes, "cxcywh", "xyxy")


def area(boxes: Tensor) -> Tensor:
    """Area of ``xyxy`` boxes ``(..., 4)`` → ``(...)``."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU of ``xyxy`` boxes ``a`` ``(N, 4)`` and ``b`` ``(M, 4)`` → ``(N, M)``."""
    return ops.box_iou(a, b)


def generalized_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise GIoU ``IoU - |C \\ (A ∪ B)| / |C|`` (C = smallest enclosing box) of ``xyxy`` boxes → ``(N, M)``, in
    ``[-1, 1]``. Boxes must not be inverted (``x1 >= x0``, ``y1 >= y0``): a box in another format gives nonsense."""
    return ops.generalized_box_iou(a, b)


def generalized_box_iou_pairs(a: Tensor, b: Tensor, *, eps: float = 1e-7) -> Tensor:
    """GIoU of matched pairs: ``a`` and ``b`` both ``(N, 4)`` ``xyxy`` → ``(N,)`` (the diagonal, without the matrix)."""
    lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)  # (N,)
    union = area(a) + area(b) - inter
    hull = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).clamp(min=0).prod(dim=1)
    return inter / union.clamp(min=eps) - (hull - union) / hull.clamp(min=eps)


def clip_xywh(boxes: Tensor, width: float | Tensor, height: float | Tensor) -> Tensor:
    """COCO ``[x, y, w, h]`` pixel boxes ``(n, 4)`` clipped to a ``width × height`` image (scalars, or ``(n,)`` one
    per box); a box wholly outside comes out with zero width or height."""
    width, height = (torch.as_tensor(v, dtype=boxes.dtype).expand(len(boxes)) for v in (width, height))
    limit = torch.stack([width, height, width, height], dim=1)  # (n, 4)
    xyxy = torch.minimum(ops.box_convert(boxes, "xywh", "xyxy").clamp(min=0), limit)
    return ops.box_convert(xyxy, "xyxy", "xywh")


def normalise(boxes: Tensor, height: int, width: int, src: BoxFormat = "xywh") -> Tensor:
    """Pixel boxes ``(n, 4)`` in format ``src`` → normalised ``(cx, cy, w, h)``, fractions of the image's sides."""
    scale = boxes.new_tensor([width, height, width, height])
    return convert(boxes, src, "cxcywh") / scale


def denormalise(boxes: Tensor, sizes: Tensor, dst: BoxFormat = "xyxy") -> Tensor:
    """Normalised ``(cx, cy, w, h)`` boxes ``(B, Q, 4)`` → pixel boxes in ``dst``, for images of ``sizes``
    ``(B, 2)`` = (height, width)."""
    h, w = sizes.unbind(-1)
    scale = torch.stack([w, h, w, h], dim=-1)[:, None, :]  # (B, 1, 4)
    return convert(boxes * scale, "cxcywh", dst)
