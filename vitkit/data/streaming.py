"""The ``streaming`` dataset: shard folders written by ``vitkit prepare`` (``vitkit.data.shards`` describes them),
registered here with their ``describe``, ``build`` and ``check``; classification records through
``shards.ShardSource``, detection records through ``shard_detection``."""

from __future__ import annotations

from vitkit.data.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataOptions,
    DatasetInfo,
    DatasetSplits,
    folder_splits,
    register_dataset,
)
from vitkit.data.errors import DataError
from vitkit.data.shard_detection import build_detection
from vitkit.data.shards import SPLITS, ShardSource, read_manifest
from vitkit.data.shards_check import check_shards

SAMPLE_KEYS = frozenset({"image", "label", "boxes", "labels", "image_id", "orig_size"})  # of either kind


def _describe(options: DataOptions) -> DatasetInfo:
    manifest = read_manifest(options.root)
    task = manifest["task"]
    if (task == "detection") != (options.task == "detection"):
        raise DataError(f"{options.root} holds {task} shards (written from "
                        f"{'a COCO set' if task == 'detection' else 'an image folder'}), not data for "
                        f"--data.task {options.task}", f"train them with --data.task {task}, or prepare the data "
                        f"for {options.task}")
    if task == "detection":
        return DatasetInfo(tuple(manifest["class_names"]), 3, manifest["image_size"], tuple(manifest["mean"]),
                           tuple(manifest["std"]), manifest["augment"], use_workers=True,
                           category_ids=tuple(manifest["category_ids"]))
    return DatasetInfo(tuple(manifest["class_names"]), 3, manifest.get("image_size"), IMAGENET_MEAN, IMAGENET_STD,
                       "imagenet", use_workers=True)


def _build(options: DataOptions, info: DatasetInfo) -> DatasetSplits:
    manifest = read_manifest(options.root)
    splits = manifest["splits"]
    if manifest["task"] == "detection":
        return build_detection(options, splits)
    sources = {split: ShardSource(options.root, split, options.cache_dir) if split in splits else None
               for split in SPLITS}
    train = sources["train"]
    return folder_splits(train, train.labels, sources["val"], sources["test"], options)


def _check(options: DataOptions, decode: bool = True, sample: int | None = None) -> list:
    return check_shards(options, sample=sample)


register_dataset("streaming", describe=_describe, build=_build, sample_keys=SAMPLE_KEYS, check=_check,
                 remote_roots=True)
