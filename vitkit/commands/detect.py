"""Detect objects in image files with a trained DETR checkpoint: drawn images and one COCO-results JSON."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="Lightning checkpoint of a detection run (.ckpt)")
    parser.add_argument("images", nargs="+", help="image files (any mode: grey, RGBA, palette and 16-bit are "
                                                  "converted to RGB)")
    parser.add_argument("--out", required=True, help="folder for <image>.png drawings, detections.json (COCO "
                                                     "results) and images.json (the image ids)")
    parser.add_argument("--threshold", type=float, default=0.7, help="keep detections scoring above this")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.threshold < 1.0:
        raise SystemExit(f"--threshold must lie in [0, 1), got {args.threshold}")
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"image file(s) not found: {', '.join(missing)}")
    out = detect_files(args.ckpt, args.images, args.out, threshold=args.threshold, device=args.device)
    print(f"{out['detections']} detections in {len(args.images)} images written to {out['folder']}")
    return 0


def detect_files(ckpt: str | Path, files: list[str], out: str | Path, *, threshold: float = 0.7,
                 device: str | None = None) -> dict:
    """Run the checkpoint's detector on ``files``; write drawings and JSON under ``out``; returns a summary."""
    import torch

    from vitkit.data.imagefolder import read_image
    from vitkit.detection import to_coco_results
    from vitkit.tasks import DetectionTask
    from vitkit.tasks.checkpoints import load_task
    from vitkit.viz.detections import draw_detections

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    task = load_task(ckpt, expected=DetectionTask).to(device)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    results, images, stems = [], [], set()
    for image_id, path in enumerate(files, start=1):
        rgb = read_image(path)  # (H, W, 3) uint8
        with torch.no_grad():
            outputs = task(preprocess(rgb, task.preprocessing).to(device))
        det = task.detections(outputs, torch.tensor([rgb.shape[:2]]), threshold=threshold)[0]
        labels = [task.category_ids.index(c) for c in det["labels"].tolist()]
        drawing = draw_detections(rgb, det["boxes"].tolist(), [task.class_names[i] for i in labels],
                                  det["scores"].tolist(), class_ids=labels)
        stem = _unique_stem(Path(path).stem, stems)
        drawing.save(folder / f"{stem}.png")
        xywh = task.detections(outputs, torch.tensor([rgb.shape[:2]]), box_format="xywh", threshold=threshold)
        results += to_coco_results(xywh, [image_id])
        images.append({"id": image_id, "file_name": str(path), "height": rgb.shape[0], "width": rgb.shape[1]})
    (folder / "detections.json").write_text(json.dumps(results))
    (folder / "images.json").write_text(json.dumps(images, indent=1))
    return {"folder": folder, "detections": len(results)}


def preprocess(rgb, preprocessing: dict):
    """``uint8 (H, W, 3)`` → normalised ``(1, 3, h, w)``: shorter side to ``image_size`` (longer ≤ ``max_size``),
    as DETR evaluates, with the training data's mean and std."""
    import torch
    import torch.nn.functional as F

    H, W = rgb.shape[:2]
    size, max_size = preprocessing["image_size"], preprocessing.get("max_size") or 10**9
    scale = min(size / min(H, W), max_size / max(H, W))
    h, w = max(1, round(H * scale)), max(1, round(W * scale))
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
    x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    if len(preprocessing["mean"]) == 1:  # trained on grey images
        x = x.mean(dim=1, keepdim=True)  # (1, 1, h, w)
    mean = torch.tensor(preprocessing["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(preprocessing["std"]).view(1, -1, 1, 1)
    return (x - mean) / std


def _unique_stem(stem: str, taken: set[str]) -> str:
    name, i = stem, 1
    while name in taken:
        i += 1
        name = f"{stem}_{i}"
    taken.add(name)
    return name
