"""Write an image folder or a COCO set as streaming shards for ``--data.dataset streaming``.

    vitkit prepare --from data/imagenet --to data/imagenet_shards                  # the JPEG files as they are
    vitkit prepare --from data/imagenet --to data/imagenet_320 --max-side 320      # pre-resized, decodes faster
    vitkit fit -c configs/vit/imagenet.yaml --data.dataset streaming --data.root data/imagenet_320
    vitkit prepare --from data/coco --to data/coco_shards                          # a COCO set: detection shards
    vitkit fit -c configs/detr/coco.yaml --data.dataset streaming --data.task detection --data.root data/coco_shards

The source is laid out as for ``--data.dataset imagefolder`` (train/<class>/…, optional val/ and test/), or is a
COCO set (a root holding annotations/, or any of --train-ann & co. given: found as ``--data.dataset coco`` finds
them); each split becomes litdata chunks in OUT/<split>/ (``vitkit.data.shards``). OUT must be empty or new;
``--overwrite`` replaces a shard folder written before. The shards may then be copied to object storage and trained
from there: ``--data.root s3://bucket/prefix``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--from", dest="source", type=Path, required=True, metavar="ROOT",
                        help="the image folder (ROOT/train/<class>/*, ROOT/val/..., ROOT/test/...) or the COCO set")
    parser.add_argument("--to", dest="out", type=Path, required=True, metavar="OUT", help="the shard folder to write")
    parser.add_argument("--max-side", type=int, default=None, metavar="N",
                        help="shrink each image so its longer side is at most N pixels, stored as JPEG (default: "
                             "the files as they are)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of pre-resized images (default 90)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes that resize images with --max-side (default: one per CPU)")
    parser.add_argument("--overwrite", action="store_true", help="replace the shards already in OUT")
    coco = parser.add_argument_group("COCO sets (as --data.train_ann & co. of training; relative to ROOT)")
    coco.add_argument("--train-ann", default=None, help="default annotations/instances_train2017.json")
    coco.add_argument("--val-ann", default=None, help="default annotations/instances_val2017.json (when present)")
    coco.add_argument("--train-images", default=None, help="default train2017")
    coco.add_argument("--val-images", default=None, help="default val2017")


def run(args: argparse.Namespace) -> int:
    from vitkit.data.shard_coco import is_coco_source, prepare_coco_shards
    from vitkit.data.shard_writer import prepare_shards

    coco = {key: getattr(args, key) for key in ("train_ann", "val_ann", "train_images", "val_images")}
    common = dict(max_side=args.max_side, quality=args.quality, overwrite=args.overwrite, workers=args.workers)
    if is_coco_source(args.source, coco):
        manifest = prepare_coco_shards(args.source, args.out, **common, **coco)
    else:
        manifest = prepare_shards(args.source, args.out, **common)
    splits = ", ".join(f"{n} {split}" for split, n in manifest["splits"].items())
    size = "as they are" if args.max_side is None else f"longer side at most {args.max_side}"
    detection = manifest["task"] == "detection"
    print(f"wrote {splits} images of {len(manifest['class_names'])} classes ({size}"
          f"{', boxes and annotation files' if detection else ''}) to {args.out}")
    print(f"train from them with: --data.dataset streaming{' --data.task detection' if detection else ''} "
          f"--data.root {args.out}")
    return 0
