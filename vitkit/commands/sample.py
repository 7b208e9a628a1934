"""Sample images from a trained Image Transformer into a PNG grid, or complete the top rows of an image."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="Lightning checkpoint of a generation run (.ckpt), or a "
                        "weights file (.safetensors / .pth) together with --model")
    parser.add_argument("--model", default=None, help="Image Transformer preset of a plain weights file")
    parser.add_argument("--num", type=int, default=64, help="number of images in the grid")
    parser.add_argument("--out", default="samples.png", help="PNG to write")
    parser.add_argument("--complete", default=None, metavar="IMAGE",
                        help="image file to complete: its top --rows rows are kept, the rest is generated")
    parser.add_argument("--rows", type=int, default=None, help="rows of --complete to keep (default: half)")
    parser.add_argument("--class", dest="class_", default=None,
                        help="class index or name (conditional models; default: every class in turn, one per column)")
    parser.add_argument("--temperature", type=float, default=1.0, help="> 0; below 1 sharpens, above 1 flattens")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--columns", type=int, default=None, help="images per grid row (default: square)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")


def run(args: argparse.Namespace) -> int:
    out = write_samples(args)
    print(f"{args.num} samples written to {out}")
    return 0


def write_samples(args: argparse.Namespace) -> Path:
    """Load the generator, draw ``args.num`` images (completions when ``args.complete``), save the grid."""
    import torch

    from vitkit.errors import ConfigError
    from vitkit.models.sampling import sample
    from vitkit.viz.sample_grid import save_image_grid

    if args.num <= 0:
        raise ConfigError(f"--num must be positive, got {args.num}", "give a number of images")
    if args.temperature <= 0:
        raise ConfigError(f"--temperature must be > 0, got {args.temperature}", "1 samples the model's distribution")
    model, class_names = load_generator(args.ckpt, args.model)
    model = model.to(args.device)
    k, columns = model.config.num_classes, args.columns
    if args.class_ is not None:
        label = _class_index(args.class_, class_names)
    elif k > 0:  # a conditional model without --class: every class in turn, one column each
        label, columns = torch.arange(args.num) % k, columns or min(k, args.num)
    else:
        label = None
    known, rows = None, 0
    if args.complete is not None:
        known, rows = _read_completion(args.complete, args.rows, model.config.img_size, model.config.in_chans)
    elif args.rows is not None:
        raise ConfigError("--rows is given without --complete", "add --complete IMAGE, or drop --rows")
    images = sample(model, args.num, temperature=args.temperature, y=label, known=known, rows=rows,
                    generator=torch.Generator().manual_seed(args.seed))
    return save_image_grid(images, args.out, nrow=columns)


def load_generator(ckpt: str, preset: str | None):
    """``(ImageTransformer, class names)`` from a generation checkpoint; nothing in the file is executed."""
    from vitkit.build import create_model
    from vitkit.errors import ConfigError
    from vitkit.models import ImageTransformer

    if preset is not None:
        model = create_model(preset, checkpoint=ckpt)
        if not isinstance(model, ImageTransformer):
            raise ConfigError(f"--model {preset} is a {type(model).__name__}, not an Image Transformer preset",
                              "pass an image_transformer_* preset (`vitkit models 'image_transformer*'`)")
        return model.eval(), [str(i) for i in range(model.config.num_classes)]
    from vitkit.tasks import GenerationTask
    from vitkit.tasks.shell import load_task

    task = load_task(ckpt, expected=GenerationTask)
    return task.model.eval(), task.class_names


def _class_index(value: str, class_names: list[str]) -> int:
    if value in class_names:
        return class_names.index(value)
    if value.lstrip("-").isdigit():
        return int(value)
    from vitkit.errors import ConfigError

    raise ConfigError(f"--class {value!r} is neither a class index nor one of the classes",
                      f"use an index or one of {class_names[:20]}")


def _read_completion(path: str, rows: int | None, size: int, chans: int):
    """The image as ``uint8 (1, C, H, W)`` and the rows to keep; size and channels must match the model."""
    import numpy as np
    import torch
    from PIL import Image

    from vitkit.errors import ConfigError, MissingFileError

    if not Path(path).is_file():
        raise MissingFileError(f"--complete {path}: no such file", "check the path")
    pixels = np.asarray(Image.open(path))
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels  # (H, W, C)
    h, w, c = pixels.shape
    if (h, w, c) != (size, size, chans):
        raise ConfigError(f"--complete {path}: the image is {w}×{h} pixels with {c} channel(s), but the model "
                          f"generates {size}×{size} images with {chans} channel(s)", "resize/convert it first")
    rows = size // 2 if rows is None else rows
    if not 0 < rows < size:
        raise ConfigError(f"--rows {rows} is outside 1..{size - 1}",
                          f"the image has {size} rows, and at least one must be left to generate")
    image = torch.from_numpy(np.ascontiguousarray(pixels.astype(np.uint8).transpose(2, 0, 1)))[None]  # (1, C, H, W)
    return image, rows
