"""Check a dataset before training: COCO annotation files against their images, an image folder, or shards.

    vitkit check-data -c configs/detr/finetune.yaml --data.root my_set        # exactly the data that fit would load
    vitkit check-data --root data/coco                       # annotations/instances_{train,val}2017.json
    vitkit check-data --ann my/instances.json --images my/images
    vitkit check-data --dataset imagefolder --root data/pets
    vitkit check-data --dataset streaming --root data/imagenet_320 [--sample 1000]   # or s3://bucket/prefix

The first form takes the same ``-c CONFIG`` and ``--data.*`` arguments as ``vitkit fit`` and checks both splits of
the data that config would load. Each problem is printed with its fix; errors (which training refuses to start on)
make the exit status 1, warnings (repaired by vitkit: boxes clipped or dropped, missing area/iscrowd/info filled)
and notes do not.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

TAKES_DATA_FLAGS = True  # the CLI hands on the --data.* arguments it does not know


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("-c", "--config", type=Path, default=None,
                        help="a training config (as for vitkit fit): its data section is checked; --data.* flags "
                             "override it as in fit")
    parser.add_argument("--dataset", default=None, choices=("coco", "digits_detection", "imagefolder", "streaming"),
                        help="short form: the dataset's kind (as --data.dataset in training); default coco")
    parser.add_argument("--root", default=None,
                        help="short form: the dataset root (as --data.root); COCO files default to its annotations/ "
                             "and {train,val}2017/; digits_detection: default data/digits_detection; streaming: "
                             "the folder vitkit prepare wrote, or its URL")
    parser.add_argument("--ann", type=Path, default=None,
                        help="check this one annotation file (relative to --root if given) instead of the layout's")
    parser.add_argument("--images", type=Path, default=None, help="the images folder of --ann")
    parser.add_argument("--full", action="store_true",
                        help="decode every image (finds truncated files; slow) instead of reading headers only")
    parser.add_argument("--sample", type=int, default=None, metavar="N",
                        help="streaming: read and decode N records of each split, spread evenly (default: all)")
    parser.add_argument("--per-kind", type=int, default=5, metavar="N",
                        help="print at most N problems of each kind (default 5)")


def run(args: argparse.Namespace, extra: list[str] | None = None) -> int:
    reports = _reports(args, extra or [])
    for report in reports:
        print(report.format(per_kind=args.per_kind))
    errors = sum(len(r.errors) for r in reports)
    print(f"{'FAILED' if errors else 'OK'}: {errors} error(s), {sum(len(r.warnings) for r in reports)} warning(s)"
          f"{' — training would refuse to start' if errors else ''}")
    return 1 if errors else 0


def _reports(args: argparse.Namespace, extra: list[str]) -> list:
    from vitkit.data.coco_check import check_coco, load_json
    from vitkit.data.datasets import get_dataset
    from vitkit.data.errors import DataError

    if args.ann is not None:
        if args.images is None:
            raise DataError("--ann needs --images DIR", "give the folder its file_name entries are relative to")
        base = Path(args.root) if args.root else Path.cwd()
        return [check_coco(load_json(base / args.ann), base / args.ann, base / args.images, verify_images=True,
                           decode=args.full)]
    dataset, options = _fit_options(args, extra) if args.config or extra else _short_options(args)
    spec = get_dataset(dataset)
    if spec.check is None:
        raise DataError(f"dataset {dataset!r} is built into vitkit: there are no files of yours to check",
                        "check a coco, digits_detection, imagefolder or streaming dataset")
    if args.sample is None:
        return spec.check(options, args.full)
    if dataset != "streaming":
        raise DataError(f"--sample applies to shard folders (--dataset streaming), not to {dataset!r}",
                        "drop --sample (add --full to decode every image)")
    return spec.check(options, args.full, sample=args.sample)


def _short_options(args: argparse.Namespace):
    from vitkit.data.datasets import DataOptions, data_root
    from vitkit.data.errors import DataError

    dataset = args.dataset or "coco"
    if args.root is None and dataset != "digits_detection":
        raise DataError(f"check-data --dataset {dataset} needs a dataset",
                        "give --root PATH, --ann FILE --images DIR, or -c CONFIG [--data.* ...] as for vitkit fit")
    return dataset, DataOptions(root=data_root(args.root, dataset))


def _fit_options(args: argparse.Namespace, extra: list[str]):
    """The dataset name and ``DataOptions`` that ``vitkit fit -c CONFIG --data.* ...`` would build."""
    import dataclasses

    from jsonargparse import ArgumentParser

    from vitkit.data import VisionDataModule
    from vitkit.data.datasets import DataOptions, data_root
    from vitkit.errors import ConfigError

    section: dict[str, Any] = {}
    if args.config is not None:
        section = _data_section(args.config)
    stray = [a for a in extra if a.startswith("--") and not a.startswith("--data.")]
    if stray or args.dataset or args.root:
        raise ConfigError(f"check-data takes -c CONFIG with --data.* flags, got {stray or ['--dataset/--root']}",
                          "give the data as for vitkit fit (--data.root, --data.train_ann, ...), or use the short "
                          "form without -c")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(VisionDataModule, "data")
    data = parser.parse_args(["--data", json.dumps(section), *extra]).data
    fields = {f.name for f in dataclasses.fields(DataOptions)}
    options = {k: v for k, v in vars(data).items() if k in fields}
    options["root"] = data_root(data.root, data.dataset)
    return data.dataset, DataOptions(**options)


def _data_section(config: Path) -> dict[str, Any]:
    import yaml

    from vitkit.errors import ConfigError, MissingFileError

    if not config.is_file():
        raise MissingFileError(f"config {config} does not exist", "check the path (configs/<family>/<dataset>.yaml)")
    data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{config}: its data section is not a mapping", "see configs/detr/coco.yaml for the layout")
    return data.get("init_args", data) if "class_path" in data else data
