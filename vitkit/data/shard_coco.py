"""Writing a COCO set as detection shards (``vitkit prepare --from COCO_ROOT``; the layout is
``vitkit.data.shard_detection``'s).

The annotation files are found as ``--data.dataset coco`` finds them (``coco.resolve_paths``: ``train_ann``,
``val_ann``, ``train_images``, ``val_images`` relative to the root, default ``annotations/instances_{train,val}2017
.json`` and ``{train,val}2017/``), or, in a root ``digits_detection`` wrote (its marker file), that set's layout; they
are checked and indexed as training checks and indexes them (``coco.load_index``: an error stops ``prepare`` with its
fix). The manifest keeps what ``describe`` of that dataset gives: classes with their category ids, the evaluation
size, the augmentation preset, the normalisation statistics.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np

from vitkit.data.datasets import DataOptions
from vitkit.data.errors import DataError
from vitkit.data.shard_detection import GROUND_TRUTH, index_arrays
from vitkit.data.shard_writer import check_options, clear, encoded, write_records
from vitkit.data.shards import FORMAT, FORMAT_VERSION, MANIFEST, SAMPLES

log = logging.getLogger(__name__)


def is_coco_source(source: Path, coco_paths: dict[str, str | None]) -> bool:
    """Whether ``vitkit prepare --from source`` means a COCO set: an annotation path given, or ``annotations/``."""
    return any(coco_paths.values()) or (Path(source) / "annotations").is_dir()


def prepare_coco_shards(source: Path, out: Path, *, max_side: int | None, quality: int, overwrite: bool,
                        workers: int, train_ann: str | None = None, val_ann: str | None = None,
                        train_images: str | None = None, val_images: str | None = None) -> dict:
    """Write the COCO set at ``source`` as detection shards into ``out``; returns the manifest written."""
    from vitkit.data import digits_detection
    from vitkit.data.coco import COCO_LAYOUT, describe_coco, load_index, resolve_paths

    check_options(source, max_side, quality)
    digits = (Path(source) / digits_detection.MARKER).is_file()
    layout = digits_detection.LAYOUT if digits else COCO_LAYOUT
    dataset = "digits_detection" if digits else "coco"
    options = DataOptions(root=Path(source), train_ann=train_ann, val_ann=val_ann, train_images=train_images,
                          val_images=val_images, task="detection")
    own = dict(augment="detr_noflip", image_size=digits_detection.CANVAS, mean=digits_detection.MEAN,
               std=digits_detection.STD) if digits else {}
    info = describe_coco(options, layout, dataset=dataset, **own)  # the files checked, their categories agree
    paths = resolve_paths(options, layout, dataset)
    clear(out, overwrite)
    splits = {}
    for split, ann, images in (("train", paths.train_ann, paths.train_images), ("val", paths.val_ann,
                                                                              paths.val_images)):
        if ann is None:
            continue
        index = load_index(ann, images)
        _write_split(out / split, index, max_side, quality, workers)
        shutil.copyfile(ann, out / split / GROUND_TRUTH)
        splits[split] = len(index.image_ids)
        log.info("prepare: %s: %d images of %s written to %s", split, splits[split], ann.name, out / split)
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "task": "detection", "dataset": dataset,
                "class_names": list(info.class_names), "category_ids": list(info.category_ids),
                "splits": splits, "max_side": max_side, "quality": quality if max_side else None,
                "image_size": info.default_image_size, "augment": info.augment, "mean": list(info.mean),
                "std": list(info.std), "source": str(Path(source).resolve())}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))  # last: a folder without it is incomplete
    return manifest


def _write_split(folder: Path, index, max_side: int | None, quality: int, workers: int) -> None:
    files = [str(index.images_dir / str(name)) for name in index.files]
    sizes = index.sizes.astype(np.int64).copy()  # (N, 2) the stored images' height, width

    def records():
        for i, (data, decoded, stored) in enumerate(encoded(files, max_side, quality, workers)):
            if decoded is not None:
                if tuple(decoded) != tuple(index.sizes[i]):
                    h, w = index.sizes[i]
                    raise DataError(f"{files[i]} is {decoded[1]}×{decoded[0]} pixels but {index.ann_file} gives "
                                    f"image id {index.image_ids[i]} width {w} and height {h}", "set them to the "
                                    "file's size (a camera's EXIF rotation swaps them) and check its boxes")
                sizes[i] = stored
            yield {"image": data, "name": str(index.files[i]), "image_id": int(index.image_ids[i])}

    write_records(folder, records())
    np.savez(folder / SAMPLES, **index_arrays(index, sizes))
