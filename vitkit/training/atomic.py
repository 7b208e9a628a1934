"""Lightning's checkpoint plugin with atomic writes (``vitkit.atomic``) and code-free reads.

Lightning's own writer uses an fsspec transaction, which on a local disk writes to the system's temporary folder and
then *moves* the file — a copy when that folder is on another file system, which a kill can interrupt half-way.
``AtomicCheckpointIO`` writes through ``vitkit.atomic.atomic_write`` instead, and with a reader that never runs code
stored in a checkpoint: every load, resuming with ``--ckpt_path`` included, goes through
``vitkit.weights.io.load_pickle_safely`` (``torch.load(weights_only=True)``). ``vitkit fit|validate|test|predict``
install it (``vitkit.trainer``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from vitkit.atomic import atomic_write
from vitkit.weights.io import load_pickle_safely


def _is_local(path: str | Path) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO``: atomic local writes (remote URLs: Lightning's writer) and code-free reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options=storage_options)
        atomic_write(str(path).removeprefix("file://"), lambda f: torch.save(checkpoint, f))

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
                        ) -> dict[str, Any]:
        # weights_only=False is not honoured: a checkpoint that needs it holds pickled objects that could run code
        if not _is_local(path):
            return super().load_checkpoint(path, weights_only=True)
        return load_pickle_safely(str(path).removeprefix("file://"))
