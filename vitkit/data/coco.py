"""COCO-format detection sets (Lin et al. 2014): an instances JSON and a folder of images per split.

Layout (every path configurable, relative to ``root`` unless absolute)::

    root/annotations/instances_train2017.json   --data.train_ann
    root/annotations/instances_val2017.json     --data.val_ann (absent: a --data.val_split share of train is held out)
    root/train2017/<file_name>                  --data.train_images
    root/val2017/<file_name>                    --data.val_images

The test split is the validation split. Before anything trains, each annotation file goes through
``vitkit.data.coco_check.check_coco`` (image files stat-ed, not decoded): errors stop the run with their fixes,
warnings are logged. Then, for the training targets (as the official DETR code does):

- classes are the categories in increasing id order: label ``i`` ↔ ``category_ids[i]`` (any ids, contiguous or not),
  ``class_names[i]`` its name; the validation file must have the same categories;
- crowd regions (``iscrowd: 1``) are excluded (COCO evaluation ignores them, through ``ground_truth``);
- boxes are clipped to the image; those with no width or height left are dropped and counted (logged);
- images without annotations are kept, with empty targets.

A raw sample (``vitkit.data.datasets``) is ``{"image": uint8 (H, W, 3) RGB, "boxes": float32 (n, 4) [x, y, w, h]
pixels, "labels": int64 (n,), "image_id": int, "orig_size": (H, W)}``; images of any mode are read as RGB by
``vitkit.data.imagefolder.read_image``. The indexed annotations live in numpy arrays (one per field, not a Python
object per box), which forked DataLoader workers share without copying.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from vitkit import boxes as box_ops
from vitkit.data.coco_check import check_coco, load_json
from vitkit.data.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataOptions,
    DatasetInfo,
    DatasetSplits,
    register_dataset,
)
from vitkit.data.errors import DataError
from vitkit.data.imagefolder import read_image

log = logging.getLogger(__name__)

COCO_LAYOUT = {"train_ann": "annotations/instances_train2017.json", "val_ann": "annotations/instances_val2017.json",
               "train_images": "train2017", "val_images": "val2017"}
SAMPLE_KEYS = frozenset({"image", "boxes", "labels", "image_id", "orig_size"})


@dataclass(frozen=True)
class CocoPaths:
    train_ann: Path
    train_images: Path
    val_ann: Path | None  # None: hold out part of train
    val_images: Path


def resolve_paths(options: DataOptions, layout: dict[str, str], dataset: str = "coco") -> CocoPaths:
    """The split files of ``options`` (explicit paths win over ``layout``); ``DataError`` when train is missing."""
    chosen = {key: getattr(options, key) or default for key, default in layout.items()}
    if options.root is None and not all(Path(p).is_absolute() for p in chosen.values()):
        raise DataError(f"dataset {dataset!r} needs --data.root PATH", f"a folder holding {layout['train_ann']} and "
                        f"{layout['train_images']}/ (or give --data.train_ann / --data.train_images as absolute paths)")
    paths = {key: Path(options.root or "/") / Path(p).expanduser() for key, p in chosen.items()}
    if not paths["train_ann"].is_file():
        raise DataError(f"annotation file {paths['train_ann']} not found", f"a COCO-format root holds "
                        f"{layout['train_ann']} and {layout['train_images']}/ (set --data.train_ann and "
                        f"--data.train_images for another layout)")
    val_ann = paths["val_ann"]
    if not val_ann.is_file():
        if options.val_ann is not None:
            raise DataError(f"validation annotation file {val_ann} (--data.val_ann) not found",
                            "check the path, or drop --data.val_ann to hold out part of the training images")
        log.info("%s not found: holding out %.0f%% of the training images for validation", val_ann,
                 100 * options.val_split)
        val_ann = None
    return CocoPaths(paths["train_ann"], paths["train_images"], val_ann, paths["val_images"])


@dataclass(frozen=True)
class CocoIndex:
    """One annotation file, indexed for training: image ``i``'s boxes are ``boxes[offsets[i]:offsets[i + 1]]``."""

    ann_file: Path
    images_dir: Path
    category_ids: tuple[int, ...]
    class_names: tuple[str, ...]
    image_ids: np.ndarray  # (N,) int64
    files: np.ndarray  # (N,) str, relative to images_dir
    sizes: np.ndarray  # (N, 2) int64 height, width from the file
    offsets: np.ndarray  # (N + 1,) int64
    boxes: np.ndarray  # (A, 4) float32 [x, y, w, h] pixels, clipped, positive size
    labels: np.ndarray  # (A,) int64 in 0..K-1


def load_index(ann_file: Path, images_dir: Path) -> CocoIndex:
    """Check and index one annotation file (cached per file version, so describe and build parse it once)."""
    stat = ann_file.stat()
    return _cached_index(str(ann_file.resolve()), str(images_dir), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _cached_index(ann_file: str, images_dir: str, mtime_ns: int, size: int) -> CocoIndex:
    data = load_json(Path(ann_file))
    report = check_coco(data, ann_file, Path(images_dir))
    report.raise_for_errors(hint=f"See every problem with: vitkit check-data --ann {ann_file} --images {images_dir}")
    for problem in report.warnings[:5]:
        log.warning("%s: %s: %s (%s)", Path(ann_file).name, problem.where, problem.message, problem.fix)
    if len(report.warnings) > 5:
        log.warning("%s: %d more warnings; run vitkit check-data for all of them", Path(ann_file).name,
                    len(report.warnings) - 5)
    return _index(data, Path(ann_file), Path(images_dir))


def _index(data: dict, ann_file: Path, images_dir: Path) -> CocoIndex:
    categories = sorted(data["categories"], key=lambda c: c["id"])
    label_of = {c["id"]: i for i, c in enumerate(categories)}
    images = data["images"]
    row_of = {img["id"]: i for i, img in enumerate(images)}
    anns = [a for a in data["annotations"] if not a.get("iscrowd", 0)]
    crowd = len(data["annotations"]) - len(anns)
    rows = np.array([row_of[a["image_id"]] for a in anns], dtype=np.int64)
    sizes = np.array([[img["height"], img["width"]] for img in images], dtype=np.float64).reshape(-1, 2)
    raw = torch.tensor([[float(v) for v in a["bbox"]] for a in anns], dtype=torch.float64).reshape(-1, 4)
    size = torch.from_numpy(sizes[rows])  # (A, 2) height, width of each box's image
    outside = (raw[:, :2] < 0).any(dim=1) | (raw[:, :2] + raw[:, 2:] > size.flip(1)).any(dim=1)  # (A,)
    boxes = torch.where(outside[:, None], box_ops.clip_xywh(raw, size[:, 1], size[:, 0]), raw)  # others untouched
    kept = ((boxes[:, 2] > 0) & (boxes[:, 3] > 0)).numpy()
    dropped, clipped = int((~kept).sum()), int(outside.numpy()[kept].sum())
    labels = np.array([label_of[a["category_id"]] for a in anns], dtype=np.int64)
    order = np.argsort(rows[kept], kind="stable")  # grouped by image, annotation order kept within each
    rows, boxes, labels = rows[kept][order], boxes.numpy()[kept][order], labels[kept][order]
    counts = np.bincount(rows, minlength=len(images))
    # a warning when boxes were dropped or changed, so that it shows without any logging set-up
    log.log(logging.WARNING if dropped or clipped else logging.INFO,
            "%s: %d images (%d without objects), %d boxes; %d crowd regions excluded from training targets, "
            "%d degenerate boxes dropped (no width or height inside the image), %d boxes clipped to the image",
            ann_file.name, len(images), int((counts == 0).sum()), len(rows), crowd, dropped, clipped)
    return CocoIndex(
        ann_file, images_dir, tuple(c["id"] for c in categories), tuple(str(c["name"]) for c in categories),
        np.array([img["id"] for img in images], dtype=np.int64), np.array([img["file_name"] for img in images]),
        np.round(sizes).astype(np.int64), np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        boxes.astype(np.float32).reshape(-1, 4), labels)


class CocoSource(Dataset):
    """The images of one annotation file as raw detection samples (see the module docstring)."""

    def __init__(self, index: CocoIndex) -> None:
        self.index = index
        self._ground_truth = None

    def __len__(self) -> int:
        return len(self.index.image_ids)

    def path(self, i: int) -> str:
        return str(self.index.images_dir / str(self.index.files[i]))

    def __getitem__(self, i: int) -> dict:
        ix = self.index
        path = self.path(i)
        image = read_image(path)  # (H, W, 3) uint8
        if tuple(image.shape[:2]) != tuple(ix.sizes[i]):
            h, w = ix.sizes[i]
            raise DataError(f"{path} is {image.shape[1]}×{image.shape[0]} pixels but {ix.ann_file} gives image id "
                            f"{ix.image_ids[i]} width {w} and height {h}", "set them to the file's size (a camera's "
                            "EXIF rotation swaps them) and check its boxes")
        start, stop = ix.offsets[i], ix.offsets[i + 1]
        return {"image": image, "boxes": ix.boxes[start:stop].copy(), "labels": ix.labels[start:stop].copy(),
                "image_id": int(ix.image_ids[i]), "orig_size": (int(ix.sizes[i, 0]), int(ix.sizes[i, 1]))}

    def ground_truth(self):
        """The annotation file as a ``pycocotools.coco.COCO`` for evaluation (``ground_truth_of``)."""
        if self._ground_truth is None:
            self._ground_truth = ground_truth_of(load_json(self.index.ann_file))
        return self._ground_truth


def ground_truth_of(data: dict):
    """An annotation file's content as a ``pycocotools.coco.COCO`` for evaluation, crowd regions included, with a
    missing ``area`` (box area), ``iscrowd`` (0) or ``info`` filled in (COCOeval needs them)."""
    from pycocotools.coco import COCO

    data.setdefault("info", {})
    for ann in data["annotations"]:
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
    gt = COCO()
    gt.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt.createIndex()
    return gt


def describe_coco(options: DataOptions, layout: dict[str, str] = COCO_LAYOUT, *, dataset: str = "coco",
                  augment: str = "detr", image_size: int = 800, mean: tuple[float, ...] = IMAGENET_MEAN,
                  std: tuple[float, ...] = IMAGENET_STD, use_workers: bool = True) -> DatasetInfo:
    """Class names and category ids from the training file (checked; the validation file must agree)."""
    paths = resolve_paths(options, layout, dataset)
    train = load_index(paths.train_ann, paths.train_images)
    if paths.val_ann is not None:
        val = load_index(paths.val_ann, paths.val_images)
        if (val.category_ids, val.class_names) != (train.category_ids, train.class_names):
            raise DataError(f"{paths.val_ann} and {paths.train_ann} have different categories "
                            f"({_describe_categories(val)} vs {_describe_categories(train)})",
                            "both files need the same 'categories' list (the same ids and names)")
    return DatasetInfo(train.class_names, 3, image_size, mean, std, augment, use_workers,
                       category_ids=train.category_ids)


def build_coco(options: DataOptions, info: DatasetInfo, layout: dict[str, str] = COCO_LAYOUT,
               dataset: str = "coco") -> DatasetSplits:
    paths = resolve_paths(options, layout, dataset)
    train_source = CocoSource(load_index(paths.train_ann, paths.train_images))
    val_source = CocoSource(load_index(paths.val_ann, paths.val_images)) if paths.val_ann is not None else None
    return coco_splits(train_source, val_source, options)


def coco_splits(train_source: Dataset, val_source: Dataset | None, options: DataOptions) -> DatasetSplits:
    """Train, val and test (= val) of a detection set: the two files' images, or without a validation file a
    seeded ``val_split`` share of the training images held out (also the shards written from a COCO set)."""
    if val_source is not None:
        val = Subset(val_source, range(len(val_source)))
        return DatasetSplits(Subset(train_source, range(len(train_source))), val, val)
    order = np.random.default_rng(options.seed).permutation(len(train_source))
    n_val = min(max(1, round(options.val_split * len(order))), len(order) - 1)
    val = Subset(train_source, np.sort(order[:n_val]).tolist())
    train = Subset(train_source, np.sort(order[n_val:]).tolist())
    return DatasetSplits(train, val, val)


def _describe_categories(index: CocoIndex) -> str:
    pairs = [f"{i}: {n}" for i, n in zip(index.category_ids, index.class_names, strict=True)]
    return "{" + ", ".join(pairs[:8]) + (", ..." if len(pairs) > 8 else "") + "}"


def check_coco_files(options: DataOptions, decode: bool = False, layout: dict[str, str] = COCO_LAYOUT,
                     dataset: str = "coco") -> list:
    """``vitkit check-data``: each annotation file the options point at, against its images (headers read and
    sizes compared; every pixel with ``decode``)."""
    paths = resolve_paths(options, layout, dataset)
    pairs = [(paths.train_ann, paths.train_images)] + ([(paths.val_ann, paths.val_images)] if paths.val_ann else [])
    return [check_coco(load_json(ann), ann, images, verify_images=True, decode=decode) for ann, images in pairs]


register_dataset("coco", describe=describe_coco, build=build_coco, sample_keys=SAMPLE_KEYS, check=check_coco_files)
