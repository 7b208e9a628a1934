"""Rebuilding a trained task from its Lightning checkpoint, without executing anything stored in the file.

Tasks record their own class in the checkpoint (``record_task``); ``load_task`` reads the file with
``weights_only=True``, accepts only task classes defined in ``vitkit.tasks``, rebuilds the task from its saved
hyper-parameters and loads the weights (with the usual key and shape checks).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import ModelCheckpoint

from vitkit.weights import CheckpointError, load_state_dict
from vitkit.weights.io import load_pickle_safely

TASK_KEY = "vitkit_task"


def checkpoint_callbacks(monitor: str, *, mode: str, filename: str) -> list[ModelCheckpoint]:
    """``checkpoints/best-….ckpt`` (best ``monitor`` so far) and ``checkpoints/last.ckpt`` (rewritten every epoch).

    Two callbacks, because Lightning's ``save_last`` only refreshes ``last.ckpt`` when a monitored checkpoint is saved.
    """
    best = ModelCheckpoint(monitor=monitor, mode=mode, filename=filename, auto_insert_metric_name=False)
    last = ModelCheckpoint(monitor=None, filename="last", save_top_k=1, enable_version_counter=False)
    return [best, last]


def record_task(task: LightningModule, checkpoint: dict[str, Any]) -> None:
    """Call from ``on_save_checkpoint``: store the task's class so ``load_task`` can rebuild it."""
    checkpoint[TASK_KEY] = f"{type(task).__module__}:{type(task).__qualname__}"


def load_task(path: str | Path, *, expected: type[LightningModule] | None = None) -> LightningModule:
    """The task saved in Lightning checkpoint ``path``, in eval mode on the CPU.

    ``expected`` (a task class) turns "this checkpoint holds another kind of task" into a clear error.
    """
    raw = load_pickle_safely(path)
    if not isinstance(raw, dict) or TASK_KEY not in raw:
        raise CheckpointError(f"{path} is not a vitkit training checkpoint (no {TASK_KEY!r} entry); pass the .ckpt "
                              f"written under the run's checkpoints/ folder")
    module_name, _, qualname = raw[TASK_KEY].partition(":")
    if not module_name.startswith("vitkit.tasks."):
        raise CheckpointError(f"{path}: refusing to build task class {raw[TASK_KEY]!r} from outside vitkit.tasks")
    cls = getattr(importlib.import_module(module_name), qualname)
    if expected is not None and not issubclass(cls, expected):
        raise CheckpointError(f"{path} holds a {cls.__name__} checkpoint, but a {expected.__name__} is needed here")
    hparams = {k: v for k, v in (raw.get("hyper_parameters") or {}).items() if not k.startswith("_")}  # CLI's own
    task = cls(**hparams)
    load_state_dict(task, raw["state_dict"], source=str(path))
    task.on_load_checkpoint(raw)
    return task.eval()
