"""Check a dataset before training: COCO annotation files against their images, or an image folder.

    vitkit check-data --root data/coco                       # annotations/instances_{train,val}2017.json
    vitkit check-data --ann my/instances.json --images my/images
    vitkit check-data --dataset imagefolder --root data/pets

Each problem is printed with its fix; errors (which training refuses to start on) make the exit status 1,
warnings (repaired by vitkit: boxes clipped or dropped, missing area/iscrowd/info filled) and notes do not.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--dataset", default="coco", choices=("coco", "digits_detection", "imagefolder"),
                        help="the dataset's kind (as --data.dataset in training); default coco")
    parser.add_argument("--root", type=Path, default=None,
                        help="the dataset root (as --data.root); COCO files default to its annotations/ and "
                             "{train,val}2017/; digits_detection: default data/digits_detection")
    parser.add_argument("--ann", type=Path, default=None,
                        help="check this one annotation file (relative to --root if given) instead of the layout's")
    parser.add_argument("--images", type=Path, default=None, help="the images folder of --ann")
    parser.add_argument("--full", action="store_true",
                        help="decode every image (finds truncated files; slow) instead of reading headers only")
    parser.add_argument("--per-kind", type=int, default=5, metavar="N",
                        help="print at most N problems of each kind (default 5)")


def run(args: argparse.Namespace) -> int:
    from vitkit.data.errors import DataError

    try:
        reports = _reports(args)
    except DataError as e:
        print(f"error: {e}")
        return 1
    for report in reports:
        print(report.format(per_kind=args.per_kind))
    errors = sum(len(r.errors) for r in reports)
    print(f"{'FAILED' if errors else 'OK'}: {errors} error(s), {sum(len(r.warnings) for r in reports)} warning(s)"
          f"{' — training would refuse to start' if errors else ''}")
    return 1 if errors else 0


def _reports(args: argparse.Namespace) -> list:
    from vitkit.data.coco_check import check_coco, load_json

    if args.dataset == "imagefolder":
        from vitkit.data.imagefolder import check_image_folder

        if args.root is None:
            raise _error("--dataset imagefolder needs --root PATH (the folder holding train/)")
        return [check_image_folder(args.root, decode=args.full)]
    return [check_coco(load_json(ann), ann, images, verify_images=True, decode=args.full)
            for ann, images in _coco_files(args)]


def _coco_files(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """``(annotation file, images folder)`` pairs to check."""
    from vitkit.data.coco import COCO_LAYOUT, resolve_paths
    from vitkit.data.datasets import DataOptions

    if args.ann is not None:
        if args.images is None:
            raise _error("--ann needs --images DIR, the folder its file_name entries are relative to")
        base = args.root or Path.cwd()
        return [(base / args.ann, base / args.images)]
    root, layout = args.root, COCO_LAYOUT
    if args.dataset == "digits_detection":
        from vitkit.data import digits_detection

        root, layout = digits_detection.ensure_generated(root or digits_detection.DEFAULT_ROOT), digits_detection.LAYOUT
    if root is None:
        raise _error("give --root PATH (a COCO-format root) or --ann FILE --images DIR")
    paths = resolve_paths(DataOptions(root=root), layout, args.dataset)
    pairs = [(paths.train_ann, paths.train_images)]
    if paths.val_ann is not None:
        pairs.append((paths.val_ann, paths.val_images))
    return pairs


def _error(message: str) -> Exception:
    from vitkit.data.errors import DataError

    return DataError(message)
