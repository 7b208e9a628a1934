"""Attention-map figure of a trained classifier on dataset images (prediction + map per image)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="Lightning checkpoint of a classification run (.ckpt)")
    parser.add_argument("--out", default="attention.png", help="PNG to write")
    parser.add_argument("--dataset", default=None, help="dataset to draw images from (default: the one trained on)")
    parser.add_argument("--root", default=None, help="dataset root (imagefolder, cifar)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--num", type=int, default=16, help="number of images")
    parser.add_argument("--columns", type=int, default=4, help="image/map pairs per row")


def run(args: argparse.Namespace) -> int:
    out = write_attention_figure(args.ckpt, args.out, dataset=args.dataset, root=args.root, split=args.split,
                                 num=args.num, columns=args.columns)
    print(f"attention figure written to {out}")
    return 0


def write_attention_figure(ckpt: str | Path, out: str | Path, *, dataset: str | None = None, root: str | None = None,
                           split: str = "test", num: int = 16, columns: int = 4, datamodule=None) -> Path:
    """Predict ``num`` images of ``split`` and save them beside their attention maps; returns the PNG path."""
    import torch

    from vitkit.data import VisionDataModule
    from vitkit.tasks import ClassificationTask
    from vitkit.tasks.shell import load_task
    from vitkit.viz.attention_maps import attention_maps, attention_method
    from vitkit.viz.figures import attention_grid
    from vitkit.weights.io import load_pickle_safely

    if num <= 0:
        from vitkit.errors import ConfigError

        raise ConfigError(f"--num must be positive, got {num}", "give a number of images")
    task = load_task(ckpt, expected=ClassificationTask)
    if datamodule is None:
        saved = load_pickle_safely(ckpt).get("datamodule_hyper_parameters", {})
        kwargs = {k: saved[k] for k in ("dataset", "root", "image_size", "seed", "val_split") if k in saved}
        kwargs.update({k: v for k, v in {"dataset": dataset, "root": root}.items() if v is not None})
        datamodule = VisionDataModule(**kwargs, augment="none")
    data = datamodule.dataset(split)
    batch = datamodule.task_format.collate([data[i] for i in range(min(num, len(data)))])
    images, labels = batch["image"], batch["label"]
    with torch.no_grad():
        preds = task(images).argmax(dim=-1)
    maps = attention_maps(task.model, images)
    mean = torch.tensor(datamodule.mean).view(1, -1, 1, 1)
    std = torch.tensor(datamodule.std).view(1, -1, 1, 1)
    shown = (images * std + mean).clamp(0, 1).permute(0, 2, 3, 1)  # (B, H, W, C)
    shown = shown[..., 0] if shown.shape[-1] == 1 else shown
    names = task.class_names
    titles = [f"pred {names[p]} / true {names[t]}" for p, t in zip(preds.tolist(), labels.tolist(), strict=True)]
    correct = (preds == labels).tolist()
    acc = sum(correct) / len(correct)
    return attention_grid(shown.numpy(), maps.numpy(), titles, correct, out, columns=columns,
                          suptitle=f"{Path(ckpt).name}: {sum(correct)}/{len(correct)} correct ({acc:.0%}) — "
                                   f"{attention_method(task.model)}")
