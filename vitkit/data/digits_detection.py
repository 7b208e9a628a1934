"""``digits_detection``: an embedded detection set — scikit-learn's 8×8 digits placed on 96×96 canvases — written to
disk in COCO format on first use, so that it travels the real COCO path (``vitkit.data.coco``, ``check_coco``).

Each canvas holds 0–4 digits (5% are empty, to exercise images without annotations), each scaled to a 16–32 pixel
cell (×2 to ×4, bilinear), at a random place where its box keeps a 2-pixel gap to the others; the box is the digit's
ink (pixels above 40/255), not its cell. Category ids are 1..10 for the digits 0..9 (as COCO counts from 1), so the
contiguous labels 0..9 differ from the ids and the mapping is exercised. Train canvases use the digits of the
training part of scikit-learn's set, validation canvases the held-out part (``datasets.DIGITS_TEST_SEED``), so no
digit image appears in both.

Files, under ``root`` (default ``data/digits_detection`` in the working directory, i.e. the repository's ignored
``data/`` folder; ``--data.root`` to put it elsewhere)::

    annotations/instances_train.json   2,000 grey PNG canvases in train/
    annotations/instances_val.json       200 in val/
    vitkit_digits_detection.json       the generator's settings; a root whose settings differ is not reused

The content depends only on ``GENERATION_SEED`` and the constants below (not on ``--data.seed``): every machine
generates the same pixels and the same JSON (byte-identical files with the same PNG library). Generation takes a
few seconds; it writes to a temporary folder renamed into place, so concurrent processes (DDP ranks) cannot see a
half-written set.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from vitkit.data.coco import SAMPLE_KEYS, build_coco, check_coco_files, describe_coco
from vitkit.data.datasets import (
    DIGITS_TEST_FRACTION,
    DIGITS_TEST_SEED,
    DataOptions,
    DatasetInfo,
    DatasetSplits,
    register_dataset,
    stratified_split,
)
from vitkit.data.errors import DataError

DEFAULT_ROOT = Path("data/digits_detection")
LAYOUT = {"train_ann": "annotations/instances_train.json", "val_ann": "annotations/instances_val.json",
          "train_images": "train", "val_images": "val"}
SETTINGS = {"version": 1, "seed": 20_240_505, "canvas": 96, "cell": [16, 32], "max_digits": 4, "empty": 0.05,
            "gap": 2, "ink": 40, "counts": {"train": 2000, "val": 200}}
GENERATION_SEED = SETTINGS["seed"]
CANVAS = SETTINGS["canvas"]
MARKER = "vitkit_digits_detection.json"
# per-channel mean/std of the 2,000 training canvases in [0, 1] (grey, so equal in R, G, B; checked by a test)
MEAN, STD = (0.0478,) * 3, (0.1701,) * 3


def ensure_generated(root: Path) -> Path:
    """``root`` holding this generator's set (written now if absent); ``DataError`` if it holds something else."""
    root = root.expanduser().resolve()
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    if not root.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        write_digits_detection(tmp)
        try:
            tmp.rename(root)
        except OSError:  # another process renamed its copy first
            shutil.rmtree(tmp, ignore_errors=True)
    marker = root / MARKER
    if not marker.is_file() or json.loads(marker.read_text()) != SETTINGS:
        raise DataError(f"{root} exists but does not hold this version of the digits_detection set (no matching "
                        f"{MARKER})", "delete the folder to have it regenerated, or pass another --data.root")
    return root


def write_digits_detection(root: Path, counts: dict[str, int] | None = None) -> None:
    """Write both splits (images, instances JSON) and the settings marker under ``root``; ``counts`` (images per
    split) overrides the standard 2,000 / 200 (a set written so is not reused as the standard one)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    cells = digits.images * (255 / 16)  # (1797, 8, 8) in 0..255
    rest, held_out = stratified_split(digits.target, DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    counts = counts or SETTINGS["counts"]
    for stream, (split, pool) in enumerate((("train", rest), ("val", held_out))):
        rng = np.random.default_rng([GENERATION_SEED, stream])
        first_id = 1 + stream * 1_000_000  # image ids unique across the splits
        _write_split(root, split, rng, cells[pool], digits.target[pool], first_id, counts[split])
    (root / MARKER).write_text(json.dumps(dict(SETTINGS, counts=counts), indent=1))


def _write_split(root: Path, split: str, rng: np.random.Generator, cells: np.ndarray, digits: np.ndarray,
                 first_id: int, count: int) -> None:
    from PIL import Image

    folder = root / LAYOUT[f"{split}_images"]
    folder.mkdir(parents=True)
    images, annotations = [], []
    for i in range(count):
        canvas, objects = _canvas(rng, cells, digits)
        name = f"{i:05d}.png"
        Image.fromarray(canvas, mode="L").save(folder / name)
        image_id = first_id + i
        images.append({"id": image_id, "file_name": name, "width": CANVAS, "height": CANVAS})
        for box, digit in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(digit) + 1,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    data = {"info": {"description": f"vitkit digits_detection ({split})", "version": str(SETTINGS["version"])},
            "licenses": [], "images": images, "annotations": annotations,
            "categories": [{"id": d + 1, "name": str(d), "supercategory": "digit"} for d in range(10)]}
    path = root / LAYOUT[f"{split}_ann"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _canvas(rng: np.random.Generator, cells: np.ndarray, digits: np.ndarray) -> tuple[np.ndarray, list]:
    """One ``uint8 (CANVAS, CANVAS)`` canvas and its ``([x, y, w, h], digit)`` objects."""
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    n = 0 if rng.random() < SETTINGS["empty"] else int(rng.integers(1, SETTINGS["max_digits"] + 1))
    boxes: list[list[int]] = []
    objects = []
    for _ in range(n):
        k = int(rng.integers(len(cells)))
        side = int(rng.integers(SETTINGS["cell"][0], SETTINGS["cell"][1] + 1))
        patch, (r0, c0, r1, c1) = _render(cells[k], side)
        for _attempt in range(50):  # rejection sampling of a free place
            y, x = (int(v) for v in rng.integers(0, CANVAS - side + 1, size=2))
            box = [x + c0, y + r0, c1 - c0, r1 - r0]
            if not any(_near(box, other, SETTINGS["gap"]) for other in boxes):
                region = canvas[y:y + side, x:x + side]
                np.maximum(region, patch, out=region)
                boxes.append(box)
                objects.append((box, int(digits[k])))
                break
    return canvas, objects


def _render(cell: np.ndarray, side: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The 8×8 digit scaled to ``side × side`` (uint8) and its ink extent ``(r0, c0, r1, c1)`` (exclusive ends)."""
    from PIL import Image

    patch = np.asarray(Image.fromarray(cell.astype(np.float32), mode="F").resize((side, side), Image.BILINEAR))
    patch = np.clip(np.rint(patch), 0, 255).astype(np.uint8)
    rows, cols = np.nonzero(patch > SETTINGS["ink"])
    return patch, (int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)


def _near(a: list[int], b: list[int], gap: int) -> bool:
    """Whether boxes ``[x, y, w, h]`` come closer than ``gap`` pixels."""
    return (a[0] < b[0] + b[2] + gap and b[0] < a[0] + a[2] + gap and
            a[1] < b[1] + b[3] + gap and b[1] < a[1] + a[3] + gap)


def _options(options: DataOptions) -> DataOptions:
    return replace(options, root=ensure_generated(options.root or DEFAULT_ROOT))


def _describe(options: DataOptions) -> DatasetInfo:
    return describe_coco(_options(options), LAYOUT, dataset="digits_detection", augment="detr_noflip",
                         image_size=CANVAS, mean=MEAN, std=STD, use_workers=False)


def _build(options: DataOptions, info: DatasetInfo) -> DatasetSplits:
    return build_coco(_options(options), info, LAYOUT, dataset="digits_detection")


def _check(options: DataOptions, decode: bool = False) -> list:
    return check_coco_files(_options(options), decode, LAYOUT, dataset="digits_detection")


register_dataset("digits_detection", describe=_describe, build=_build, sample_keys=SAMPLE_KEYS, check=_check)
