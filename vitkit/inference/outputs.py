"""Prediction files: ``.csv`` or ``.json``, written atomically.

- Classifiers: one row per image — ``path``, then ``class_1, prob_1, ..., class_k, prob_k`` (names, most probable
  first); JSON: ``[{"path", "top_k": [{"index", "class", "prob"}, ...]}, ...]``.
- Detectors: the records ``vitkit detect`` writes (``coco_records``): ``images`` (``id``, ``file_name``, ``height``,
  ``width``) and ``detections`` (COCO results: ``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]`` in original
  pixels, ``score``). JSON: ``{"images": [...], "detections": [...]}``; CSV: one row per detection — ``path,
  image_id, category_id, class, score, x, y, w, h`` (an image without detections has no row; JSON lists every image).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from vitkit import boxes as box_ops
from vitkit.atomic import atomic_write_text
from vitkit.errors import ConfigError
from vitkit.inference.results import ClassPrediction, Detections

SUFFIXES = (".csv", ".json")


def check_output(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"--out {path}: predictions are written as CSV or JSON", "name it <something>.csv or .json")
    return path


def write_predictions(results: Sequence[ClassPrediction | Detections], path: str | Path) -> Path:
    """Write classifier or detector results to ``path`` (``.csv`` or ``.json``, by its suffix)."""
    path = check_output(path)
    as_json = path.suffix.lower() == ".json"
    if results and isinstance(results[0], Detections):
        images, detections = coco_records(results)
        text = json.dumps({"images": images, "detections": detections}) if as_json else _detections_csv(results)
    else:
        text = _classes_json(results) if as_json else _classes_csv(results)
    return atomic_write_text(path, text)


def coco_records(results: Sequence[Detections]) -> tuple[list[dict], list[dict]]:
    """``(images, detections)``: image records with ids 1, 2, ... in order, and COCO results entries."""
    images, detections = [], []
    for image_id, r in enumerate(results, start=1):
        images.append({"id": image_id, "file_name": r.source, "height": r.height, "width": r.width})
        if not r.objects:
            continue
        xyxy = torch.tensor([o.box for o in r.objects], dtype=torch.float64)  # (n, 4)
        for o, box in zip(r.objects, box_ops.convert(xyxy, "xyxy", "xywh").tolist(), strict=True):
            detections.append({"image_id": image_id, "category_id": o.category_id, "bbox": box, "score": o.score})
    return images, detections


def _detections_csv(results: Sequence[Detections]) -> str:
    _, detections = coco_records(results)
    objects = [(r.source, o.name) for r in results for o in r.objects]  # in the order of `detections`
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["path", "image_id", "category_id", "class", "score", "x", "y", "w", "h"])
    for (source, name), d in zip(objects, detections, strict=True):
        writer.writerow([source, d["image_id"], d["category_id"], name, f"{d['score']:.6f}",
                         *(f"{v:.2f}" for v in d["bbox"])])
    return text.getvalue()


def _classes_csv(results: Sequence[ClassPrediction]) -> str:
    k = max((len(r.indices) for r in results), default=0)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["path", *(f"{c}_{i}" for i in range(1, k + 1) for c in ("class", "prob"))])
    for r in results:
        writer.writerow([r.source, *(v for n, p in zip(r.names, r.probs, strict=True) for v in (n, f"{p:.6f}"))])
    return text.getvalue()


def _classes_json(results: Sequence[ClassPrediction]) -> str:
    return json.dumps([{"path": r.source, "top_k": [{"index": i, "class": n, "prob": p} for i, n, p in
                                                    zip(r.indices, r.names, r.probs, strict=True)]} for r in results])
