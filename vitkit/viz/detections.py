"""Detections drawn on their image: one coloured box per object with its class name and score."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Tableau-like palette; a class keeps its colour across images.
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def draw_detections(
    image: np.ndarray,
    boxes: Sequence[Sequence[float]],
    names: Sequence[str],
    scores: Sequence[float],
    *,
    class_ids: Sequence[int] | None = None,
):
    """A PIL image of ``image`` (``uint8 (H, W, 3)``) with ``xyxy`` pixel ``boxes`` labelled ``"name 0.93"``.

    ``class_ids`` choose the colours (default: one per distinct name).
    """
    from PIL import Image, ImageDraw

    out = Image.fromarray(np.ascontiguousarray(image)).convert("RGB")
    draw = ImageDraw.Draw(out)
    width = max(1, round(max(out.size) / 300))
    ids = list(class_ids) if class_ids is not None else [sorted(set(names)).index(n) for n in names]
    for box, name, score, cid in zip(boxes, names, scores, ids, strict=True):
        colour = PALETTE[cid % len(PALETTE)]
        x0, y0, x1, y1 = (float(v) for v in box)
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)
        text = f"{name} {score:.2f}"
        left, top, right, bottom = draw.textbbox((x0, y0), text)
        th = bottom - top
        ty = y0 - th - 2 if y0 - th - 2 >= 0 else y0
        draw.rectangle([x0, ty, x0 + (right - left) + 4, ty + th + 2], fill=colour)
        draw.text((x0 + 2, ty), text, fill=(255, 255, 255))
    return out
