"""Detection shards: a COCO set written by ``vitkit prepare --from COCO_ROOT`` (``vitkit.data.shard_writer``), read
as ``--data.dataset streaming --data.task detection``.

Per split, record ``i`` is image ``i`` of the annotation file as ``vitkit.data.coco`` indexes it (the file's image
order); ``samples.npz`` holds that index (``coco.CocoIndex``'s arrays: the training targets, crowd regions excluded,
boxes clipped, degenerate ones dropped):

- ``names`` ``(N,)`` the image's ``file_name``, ``image_ids`` ``(N,)``, ``orig_sizes`` ``(N, 2)`` (height, width) as
  the annotation file gives them, ``sizes`` ``(N, 2)`` of the stored image (smaller with ``--max-side``);
- ``offsets`` ``(N + 1,)``, ``boxes`` ``(A, 4)`` float32 ``[x, y, w, h]`` in the stored image's pixels (scaled with
  it, axis by axis), ``labels`` ``(A,)`` in ``0..K-1``.

So a raw sample is the COCO path's (``coco.CocoSource``): the same image (at full size, the file's own bytes), boxes,
labels, image id and ``orig_size`` = the annotated size, which maps predictions back onto the annotation file's
pixels; ``instances.json`` is that file, against which the detection task evaluates. Classes (names and category
ids), the evaluation size, the augmentation preset and the normalisation statistics of the source dataset
(``coco`` or ``digits_detection``) are in the manifest; the splits are made as ``coco.coco_splits`` makes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vitkit.data.coco import coco_splits, ground_truth_of
from vitkit.data.datasets import DataOptions, DatasetSplits
from vitkit.data.errors import DataError
from vitkit.data.shards import ShardSplit, read_file, reprepare

GROUND_TRUTH = "instances.json"


class DetectionShardSource(ShardSplit):
    """Detection records: raw samples as ``vitkit.data.coco.CocoSource`` gives them."""

    def __init__(self, root: Path | str, split: str, cache_dir: str | None = None) -> None:
        super().__init__(root, split, cache_dir)
        s = self.samples
        self.image_ids, self.sizes, self.orig_sizes = s["image_ids"], s["sizes"], s["orig_sizes"]
        self.offsets, self.boxes, self.box_labels = s["offsets"], s["boxes"], s["labels"]
        self._ground_truth = None

    def targets(self, index: int) -> dict:
        start, stop = self.offsets[index], self.offsets[index + 1]
        return {"boxes": self.boxes[start:stop].copy(), "labels": self.box_labels[start:stop].copy(),
                "image_id": int(self.image_ids[index]),
                "orig_size": (int(self.orig_sizes[index, 0]), int(self.orig_sizes[index, 1]))}

    def __getitem__(self, index: int) -> dict:
        sample = super().__getitem__(index)
        if tuple(sample["image"].shape[:2]) != tuple(self.sizes[index]):
            h, w = self.sizes[index]
            raise DataError(f"record {self.path(index)} is {sample['image'].shape[1]}×{sample['image'].shape[0]} "
                            f"pixels but its annotation says {w}×{h}", "fix the annotation file's width and height "
                            "(a camera's EXIF rotation swaps them), then " + reprepare(self.root, "detection"))
        return sample

    def ground_truth(self):
        """The split's annotation file as a ``pycocotools.coco.COCO`` (``coco.ground_truth_of``), fetched on first
        use (only the processes that evaluate read it)."""
        if self._ground_truth is None:
            try:
                data = json.loads(read_file(self.root, f"{self.split}/{GROUND_TRUTH}"))
            except (OSError, ValueError) as e:
                if isinstance(e, DataError):
                    raise
                raise DataError(f"cannot read {self.location}/{GROUND_TRUTH}: {type(e).__name__}",
                                reprepare(self.root, "detection")) from e
            self._ground_truth = ground_truth_of(data)
        return self._ground_truth


def build_detection(options: DataOptions, splits: dict) -> DatasetSplits:
    train = DetectionShardSource(options.root, "train", options.cache_dir)
    val = DetectionShardSource(options.root, "val", options.cache_dir) if "val" in splits else None
    return coco_splits(train, val, options)


def index_arrays(index, sizes: np.ndarray) -> dict[str, np.ndarray]:
    """``samples.npz`` of a split from its ``coco.CocoIndex`` and the stored images' ``sizes (N, 2)``: boxes
    scaled from the annotated size to the stored one, axis by axis."""
    orig = index.sizes.astype(np.int64)  # (N, 2) height, width
    counts = np.diff(index.offsets)
    per_box = np.repeat(sizes / orig, counts, axis=0)  # (A, 2) height, width scale of each box's image
    scale = np.stack([per_box[:, 1], per_box[:, 0], per_box[:, 1], per_box[:, 0]], axis=1)  # (A, 4) x, y, w, h
    boxes = index.boxes if np.array_equal(sizes, orig) else (index.boxes * scale).astype(np.float32)
    return {"names": np.array([str(f) for f in index.files]), "image_ids": index.image_ids.astype(np.int64),
            "orig_sizes": orig, "sizes": np.asarray(sizes, dtype=np.int64), "offsets": index.offsets,
            "boxes": boxes.reshape(-1, 4), "labels": index.labels.astype(np.int64)}
