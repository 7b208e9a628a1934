"""Export a training checkpoint's model: safetensors (weights + preset + config), ONNX, or a torch.export program.

``vitkit export --ckpt CKPT --format safetensors|onnx|exported_program --out PATH``. Each format is one entry of
``FORMATS`` (the file suffix it writes and its writer), so a new format is one function and one line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Format:
    suffix: str  # what --out must end with
    write: Callable[[Any, Path, str | Path], str]  # (task, out, ckpt) → the line to print
    help: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="Lightning checkpoint of a vitkit run (.ckpt)")
    parser.add_argument("--format", default="safetensors", choices=list(FORMATS),
                        help="; ".join(f"{name}: {f.help}" for name, f in FORMATS.items()))
    parser.add_argument("--out", required=True, help="file to write (" + ", ".join(
        f"{f.suffix} for {name}" for name, f in FORMATS.items()) + ")")


def run(args: argparse.Namespace) -> int:
    print(export(args.ckpt, args.out, format=args.format))
    return 0


def export(ckpt: str | Path, out: str | Path, *, format: str = "safetensors") -> str:
    """Write the model of training checkpoint ``ckpt`` to ``out`` in ``format``; returns what was written.
    Reading ``ckpt`` runs no code stored in it."""
    from vitkit.tasks.shell import load_task
    from vitkit.weights import CheckpointError

    spec, out = FORMATS[format], Path(out)
    if out.suffix != spec.suffix:
        raise CheckpointError(f"--out {out}: the exported file is a {format} file", f"name it <something>{spec.suffix}")
    return spec.write(load_task(ckpt), out, ckpt)


def _write_safetensors(task: Any, out: Path, ckpt: str | Path) -> str:
    """The model with its preset, config, class names and the data's preprocessing as metadata
    (``vitkit.weights.export``)."""
    from vitkit.models import is_model
    from vitkit.weights import CheckpointError
    from vitkit.weights.export import export_safetensors
    from vitkit.weights.io import load_pickle_safely

    preset = task.hparams.get("model")
    if not (isinstance(preset, str) and is_model(preset)):
        raise CheckpointError(f"{ckpt}: the task's model {preset!r} is not a vitkit preset, and only presets can be "
                              f"exported with their config",
                              "save a timm model's state dict with safetensors directly")
    export_safetensors(task.model, out, preset=preset, extra=_extra(task, load_pickle_safely(ckpt)))
    return f"{out} written: vitkit.create_model(checkpoint={str(out)!r}) rebuilds the model"


def _graph_writer(kind: str) -> Callable[[Any, Path, str | Path], str]:
    def write(task: Any, out: Path, ckpt: str | Path) -> str:
        from vitkit.inference.export import save_exported_program, save_onnx

        save = save_onnx if kind == "onnx" else save_exported_program
        dims = save(task.model, out, image_size=_image_size(task))
        shown = ", ".join(f"{name} {dynamic}" for name, dynamic in dims.items())
        return f"{out} written ({kind}); dynamic dimensions: {shown}"

    return write


def _image_size(task: Any) -> int | None:
    """The size the data's images are prepared at (traced example inputs; a detector's shorter side)."""
    return (getattr(task, "preprocessing", None) or {}).get("image_size")


def _extra(task: Any, raw: dict) -> dict[str, Any]:
    """What an inference script needs besides the weights: class names (and ids), and the data's preprocessing."""
    extra: dict[str, Any] = {"class_names": list(task.class_names)}
    if getattr(task, "category_ids", None) is not None:
        extra["category_ids"] = list(task.category_ids)
    data = raw.get("VisionDataModule") or {}
    extra["preprocessing"] = getattr(task, "preprocessing", None) or {
        k: data[k] for k in ("image_size", "mean", "std", "in_chans") if k in data}
    return extra


FORMATS: dict[str, Format] = {
    "safetensors": Format(".safetensors", _write_safetensors, "weights with preset, config, class names and "
                                                              "preprocessing"),
    "onnx": Format(".onnx", _graph_writer("onnx"), "an ONNX graph (needs the export extra)"),
    "exported_program": Format(".pt2", _graph_writer("exported_program"), "a torch.export program "
                                                                           "(torch.export.load)"),
}
