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
    parser.add_argument("--attention", type=int, default=0, metavar="K",
                        help="also write <image>_attention.png: the last decoder layer's cross-attention of the K "
                             "most confident detections")
    parser.add_argument("--ema", action="store_true",
                        help="use the checkpoint's EMA weights (a run with --model.init_args.ema_decay)")


def run(args: argparse.Namespace) -> int:
    from vitkit.errors import ConfigError, MissingFileError

    if not 0.0 <= args.threshold < 1.0:
        raise ConfigError(f"--threshold {args.threshold}", "use a score in [0, 1), e.g. 0.5")
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        raise MissingFileError(f"image file(s) not found: {', '.join(missing)}", "check the paths")
    out = detect_files(args.ckpt, args.images, args.out, threshold=args.threshold, device=args.device,
                       attention=args.attention, ema=args.ema)
    print(f"{out['detections']} detections in {len(args.images)} images written to {out['folder']}")
    return 0


def detect_files(ckpt: str | Path, files: list[str], out: str | Path, *, threshold: float = 0.7,
                 device: str | None = None, attention: int = 0, ema: bool = False) -> dict:
    """Run the checkpoint's detector on ``files``; write drawings and JSON under ``out`` (and the cross-attention
    figures of the ``attention`` best detections per image); returns a summary. ``ema``: with the checkpoint's EMA
    weights. Images are prepared, and detections recorded, as ``vitkit predict`` does (``vitkit.inference``)."""
    import torch

    from vitkit.data.imagefolder import read_image
    from vitkit.errors import ConfigError
    from vitkit.inference import Predictor
    from vitkit.inference.outputs import coco_records
    from vitkit.models import DETR
    from vitkit.tasks import DetectionTask
    from vitkit.viz.detections import draw_detections
    from vitkit.viz.detr_attention import detr_cross_attention_maps

    predictor = Predictor.from_checkpoint(ckpt, expected=DetectionTask, threshold=threshold, device=device,
                                          ema=ema)
    task = predictor.task
    if attention > 0 and not isinstance(task.model, DETR):
        raise ConfigError(f"--attention {attention}: the maps are DETR's dense cross-attention, and {ckpt} holds a "
                          f"{type(task.model).__name__}, whose deformable cross-attention samples a few points per "
                          f"query instead", "leave out --attention for this checkpoint")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    results, stems = [], set()
    for path in files:
        rgb = read_image(path)  # (H, W, 3) uint8
        x = predictor.preprocessing(rgb)[None].to(predictor.device)  # (1, C, h, w)
        if attention > 0:
            outputs, maps = detr_cross_attention_maps(task.model, x)  # maps (1, Q, h, w) at the model's input size
        else:
            with torch.no_grad():
                outputs = task.model(x)
        found = predictor.detections(outputs, [rgb.shape[:2]], [str(path)])[0]
        labels = [task.category_ids.index(o.category_id) for o in found.objects]
        drawing = draw_detections(rgb, [o.box for o in found.objects], [o.name for o in found.objects],
                                  [o.score for o in found.objects], class_ids=labels)
        stem = _unique_stem(Path(path).stem, stems)
        drawing.save(folder / f"{stem}.png")
        if attention > 0 and found.objects:
            det = task.detections(outputs, torch.tensor([rgb.shape[:2]]), threshold=threshold)[0]  # with queries
            _attention_figure(rgb, maps[0], det, task.class_names, labels, attention, folder / f"{stem}_attention.png")
        results.append(found)
    images, detections = coco_records(results)
    (folder / "detections.json").write_text(json.dumps(detections))
    (folder / "images.json").write_text(json.dumps(images, indent=1))
    return {"folder": folder, "detections": len(detections)}


def _attention_figure(rgb, maps, det, class_names, labels, k, path) -> None:
    import torch.nn.functional as F

    from vitkit.viz.detr_attention import query_attention_figure

    queries = det["queries"][:k]
    maps = F.interpolate(maps[queries.to(maps.device)][:, None], size=rgb.shape[:2], mode="bilinear")[:, 0]
    titles = [f"{class_names[labels[i]]} {det['scores'][i]:.2f} (query {int(q)})" for i, q in enumerate(queries)]
    query_attention_figure(rgb, maps.clamp(0, 1), det["boxes"][:k].tolist(), titles, path)


def _unique_stem(stem: str, taken: set[str]) -> str:
    name, i = stem, 1
    while name in taken:
        i += 1
        name = f"{stem}_{i}"
    taken.add(name)
    return name
