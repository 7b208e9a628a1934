"""Export a training checkpoint's model as a .safetensors file that names its preset and carries its config."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="Lightning checkpoint of a vitkit run (.ckpt)")
    parser.add_argument("--out", required=True, help="file to write (.safetensors)")


def run(args: argparse.Namespace) -> int:
    out = export_checkpoint(args.ckpt, args.out)
    print(f"{out} written: vitkit.create_model(checkpoint={str(out)!r}) rebuilds the model")
    return 0


def export_checkpoint(ckpt: str | Path, out: str | Path) -> Path:
    """Write the model of training checkpoint ``ckpt`` to ``out`` with its preset, config, class names and the data's
    preprocessing as metadata (``vitkit.weights.export``). Reading ``ckpt`` runs no code stored in it."""
    from vitkit.models import is_model
    from vitkit.tasks.shell import load_task
    from vitkit.weights import CheckpointError
    from vitkit.weights.export import export_safetensors
    from vitkit.weights.io import load_pickle_safely

    out = Path(out)
    if out.suffix != ".safetensors":
        raise CheckpointError(f"--out {out}: the exported file is a safetensors file",
                              "name it <something>.safetensors")
    task = load_task(ckpt)
    preset = task.hparams.get("model")
    if not (isinstance(preset, str) and is_model(preset)):
        raise CheckpointError(f"{ckpt}: the task's model {preset!r} is not a vitkit preset, and only presets can be "
                              f"exported with their config",
                              "save a timm model's state dict with safetensors directly")
    return export_safetensors(task.model, out, preset=preset, extra=_extra(task, load_pickle_safely(ckpt)))


def _extra(task: Any, raw: dict) -> dict[str, Any]:
    """What an inference script needs besides the weights: class names (and ids), and the data's preprocessing."""
    extra: dict[str, Any] = {"class_names": list(task.class_names)}
    if getattr(task, "category_ids", None) is not None:
        extra["category_ids"] = list(task.category_ids)
    data = raw.get("VisionDataModule") or {}
    extra["preprocessing"] = getattr(task, "preprocessing", None) or {
        k: data[k] for k in ("image_size", "mean", "std", "in_chans") if k in data}
    return extra
