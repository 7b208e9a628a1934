"""Rebuilding a trained task from its Lightning checkpoint, without executing anything stored in the file.

Tasks record their own class in the checkpoint (``record_task``); ``load_task`` reads the file with
``weights_only=True``, accepts only task classes defined in ``vitkit.tasks``, rebuilds the task from its saved
hyper-parameters and loads the weights (with the usual key and shape checks).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule

from vitkit.weights import CheckpointError, load_state_dict

TASK_KEY = "vitkit_task"


def record_task(task: LightningModule, checkpoint: dict[str, Any]) -> None:
    """Call from ``on_save_checkpoint``: store the task's class so ``load_task`` can rebuild it."""
    checkpoint[TASK_KEY] = f"{type(task).__module__}:{type(task).__qualname__}"


def load_task(path: str | Path, *, expected: type[LightningModule] | None = None) -> LightningModule:
    """The task saved in Lightning checkpoint ``path``, in eval mode on the CPU.

    ``expected`` (a task class) turns "this checkpoint holds another kind of task" into a clear error.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    raw = torch.load(path, map_location="cpu", weights_only=True) if path.suffix == ".ckpt" else None
    if not isinstance(raw, dict) or TASK_KEY not in raw:
        raise CheckpointError(f"{path} is not a vitkit training checkpoint (no {TASK_KEY!r} entry); pass the .ckpt "
                              f"written under the run's checkpoints/ folder")
    module_name, _, qualname = raw[TASK_KEY].partition(":")
    if not module_name.startswith("vitkit.tasks."):
        raise CheckpointError(f"{path}: refusing to build task class {raw[TASK_KEY]!r} from outside vitkit.tasks")
    cls = getattr(importlib.import_module(module_name), qualname)
    if expected is not None and not issubclass(cls, expected):
        raise CheckpointError(f"{path} holds a {cls.__name__} checkpoint, but a {expected.__name__} is needed here")
    task = cls(**dict(raw.get("hyper_parameters") or {}))
    load_state_dict(task, raw["state_dict"], source=str(path))
    task.on_load_checkpoint(raw)
    return task.eval()
