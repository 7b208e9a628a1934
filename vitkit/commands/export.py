"""Export a training checkpoint's model: ``--format safetensors`` (default), a .safetensors file that names its preset
and carries its config; ``--format hf``, a model folder (config.json + model.safetensors + README.md model card,
``vitkit.weights.folder``) that ``vitkit.from_pretrained`` loads and the Hugging Face Hub displays."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="Lightning checkpoint of a vitkit run (.ckpt)")
    parser.add_argument("--out", required=True, help="file to write (.safetensors), or folder for --format hf")
    parser.add_argument("--format", choices=["safetensors", "hf"], default="safetensors",
                        help="safetensors: one self-describing file; hf: a model folder for from_pretrained / the Hub")


def run(args: argparse.Namespace) -> int:
    if args.format == "hf":
        out = export_folder(args.ckpt, args.out)
        print(f"{out} written: vitkit.from_pretrained({str(out)!r}) rebuilds the model")
        return 0
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


def export_folder(ckpt: str | Path, out: str | Path) -> Path:
    """Write the model of training checkpoint ``ckpt`` as a model folder ``out`` (``vitkit.weights.folder``), with
    class names, preprocessing and what the checkpoint records of the run (data, monitored metric, epochs)."""
    from vitkit.models import is_model
    from vitkit.tasks.shell import load_task
    from vitkit.weights import CheckpointError
    from vitkit.weights.folder import save_pretrained
    from vitkit.weights.io import load_pickle_safely

    task = load_task(ckpt)
    preset = task.hparams.get("model")
    if not (isinstance(preset, str) and is_model(preset)):
        raise CheckpointError(f"{ckpt}: the task's model {preset!r} is not a vitkit preset, and only presets can be "
                              f"exported as a model folder", "save a timm model with timm's own push_to_hf_hub")
    raw = load_pickle_safely(ckpt)
    extra = _extra(task, raw)
    return save_pretrained(task.model, out, preset=preset, training=_run_record(raw), **extra)


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
