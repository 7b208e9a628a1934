"""Write an image folder as streaming shards for ``--data.dataset streaming``.

    vitkit prepare --from data/imagenet --to data/imagenet_shards                  # the JPEG files as they are
    vitkit prepare --from data/imagenet --to data/imagenet_320 --max-side 320      # pre-resized, decodes faster
    vitkit fit -c configs/vit/imagenet.yaml --data.dataset streaming --data.root data/imagenet_320

The source is laid out as for ``--data.dataset imagefolder`` (train/<class>/…, optional val/ and test/); each split
becomes litdata chunks in OUT/<split>/ (``vitkit.data.shards``). OUT must be empty or new; ``--overwrite`` replaces
a shard folder written before.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--from", dest="source", type=Path, required=True, metavar="ROOT",
                        help="the image folder (ROOT/train/<class>/*, ROOT/val/..., ROOT/test/...)")
    parser.add_argument("--to", dest="out", type=Path, required=True, metavar="OUT", help="the shard folder to write")
    parser.add_argument("--max-side", type=int, default=None, metavar="N",
                        help="shrink each image so its longer side is at most N pixels, stored as JPEG (default: "
                             "the files as they are)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of pre-resized images (default 90)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes that resize images with --max-side (default: one per CPU)")
    parser.add_argument("--overwrite", action="store_true", help="replace the shards already in OUT")


def run(args: argparse.Namespace) -> int:
    from vitkit.data.shard_writer import prepare_shards

    manifest = prepare_shards(args.source, args.out, max_side=args.max_side, quality=args.quality,
                              overwrite=args.overwrite, workers=args.workers)
    splits = ", ".join(f"{n} {split}" for split, n in manifest["splits"].items())
    size = "as they are" if args.max_side is None else f"longer side at most {args.max_side}"
    print(f"wrote {splits} images of {len(manifest['class_names'])} classes ({size}) to {args.out}")
    print(f"train from them with: --data.dataset streaming --data.root {args.out}")
    return 0
