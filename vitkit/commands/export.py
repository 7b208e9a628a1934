"""Export a training checkpoint's model: safetensors (weights + preset + config), a model folder, ONNX, or a
torch.export program.

``vitkit export --ckpt CKPT --format safetensors|hf|onnx|exported_program --out PATH``. Each format is one entry of
``FORMATS`` (the file suffix it writes, empty for a folder, and its writer), so a new format is one function and one
line. ``hf`` writes config.json + model.safetensors + a README.md model card (``vitkit.weights.folder``), which
``vitkit.from_pretrained`` loads and the Hugging Face Hub displays.
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
        f"{f.suffix or 'a folder'} for {name}" for name, f in FORMATS.items()) + ")")
    parser.add_argument("--ema", action="store_true",
                        help="use the checkpoint's EMA weights (a run with --model.init_args.ema_decay)")


def run(args: argparse.Namespace) -> int:
    print(export(args.ckpt, args.out, format=args.format, ema=args.ema))
    return 0


def export(ckpt: str | Path, out: str | Path, *, format: str = "safetensors", ema: bool = False) -> str:
    """Write the model of training checkpoint ``ckpt`` to ``out`` in ``format``; returns what was written.
    ``ema``: the checkpoint's EMA weights rather than the raw ones. Reading ``ckpt`` runs no code stored in it."""
    from vitkit.tasks.shell import load_task
    from vitkit.weights import CheckpointError

    spec, out = FORMATS[format], Path(out)
    if spec.suffix and out.suffix != spec.suffix:
        raise CheckpointError(f"--out {out}: the exported file is a {format} file", f"name it <something>{spec.suffix}")
    return spec.write(load_task(ckpt, ema=ema), out, ckpt)


def _preset(task: Any, ckpt: str | Path, fix: str) -> str:
    """The vitkit preset the task's model was built from; only presets can be exported with their config."""
    from vitkit.models import is_model
    from vitkit.weights import CheckpointError

    preset = task.hparams.get("model")
    if not (isinstance(preset, str) and is_model(preset)):
        raise CheckpointError(f"{ckpt}: the task's model {preset!r} is not a vitkit preset, and only presets can be "
                              f"exported with their config", fix)
    return preset


def _write_safetensors(task: Any, out: Path, ckpt: str | Path) -> str:
    """The model with its preset, config, class names and the data's preprocessing as metadata
    (``vitkit.weights.export``)."""
    from vitkit.weights.export import export_safetensors
    from vitkit.weights.io import load_pickle_safely

    preset = _preset(task, ckpt, "save a timm model's state dict with safetensors directly")
    export_safetensors(task.model, out, preset=preset, extra=_extra(task, load_pickle_safely(ckpt)))
    return f"{out} written: vitkit.create_model(checkpoint={str(out)!r}) rebuilds the model"


def _write_folder(task: Any, out: Path, ckpt: str | Path) -> str:
    """A model folder with class names, preprocessing and what the checkpoint records of the run (data, monitored
    metric, epochs) in its model card."""
    from vitkit.weights.folder import save_pretrained
    from vitkit.weights.io import load_pickle_safely

    preset = _preset(task, ckpt, "save a timm model with timm's own push_to_hf_hub")
    raw = load_pickle_safely(ckpt)
    out = save_pretrained(task.model, out, preset=preset, training=_run_record(raw), **_extra(task, raw))
    return f"{out} written: vitkit.from_pretrained({str(out)!r}) rebuilds the model"


def _run_record(raw: dict) -> dict[str, Any]:
    """Training data, the monitored metric (last and best) and the length of the run, from a Lightning checkpoint."""
    data = raw.get("datamodule_hyper_parameters") or {}
    described = ", ".join(f"{k}={data[k]}" for k in ("dataset", "root", "image_size") if data.get(k) is not None)
    metrics: dict[str, Any] = {}
    for name, state in (raw.get("callbacks") or {}).items():
        monitor = state.get("monitor") if name.startswith("ModelCheckpoint") else None
        if monitor:
            for key, label in (("current_score", monitor), ("best_model_score", f"best {monitor}")):
                if state.get(key) is not None:
                    metrics[label] = float(state[key])
    return {"data": described or None, "metrics": metrics, "epoch": raw.get("epoch", 0) + 1,
            "global_step": raw.get("global_step")}


def _graph_writer(kind: str) -> Callable[[Any, Path, str | Path], str]:
    def write(task: Any, out: Path, ckpt: str | Path) -> str:
        from vitkit.inference.export import input_requirements, save_exported_program, save_onnx

        save = save_onnx if kind == "onnx" else save_exported_program
        dims = save(task.model, out, image_size=_image_size(task))
        shown = ", ".join(f"{name} {dynamic}" for name, dynamic in dims.items())
        needs = input_requirements(task.model)
        if needs:  # RT-DETR: smaller images fail inside the runtime
            shown += f"; images: {needs['vitkit.input_rule']}"
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
    "hf": Format("", _write_folder, "a model folder (config.json, model.safetensors, README.md model card) for "
                                    "vitkit.from_pretrained and the Hub"),
    "onnx": Format(".onnx", _graph_writer("onnx"), "an ONNX graph (needs the export extra)"),
    "exported_program": Format(".pt2", _graph_writer("exported_program"), "a torch.export program "
                                                                           "(torch.export.load)"),
}
