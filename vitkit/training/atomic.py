"""Files that are either wholly written or not there: checkpoints and results survive a run killed mid-write.

``atomic_write(path, write)`` has ``write`` fill a temporary file in the same folder, flushes it to the disk, then
renames it over ``path`` (``os.replace``: atomic within one file system) and flushes the folder entry. A process killed
at any moment leaves either the previous file or the new one, never a truncated one; a leftover temporary
(``.<name>.tmp-<pid>``) is all that can remain. Lightning's own writer uses an fsspec transaction, which on a local
disk writes to the system's temporary folder and then *moves* the file — a copy when that folder is on another file
system, which a kill can interrupt half-way.

``AtomicCheckpointIO`` is Lightning's checkpoint plugin with that writer, and with a reader that never runs code
stored in a checkpoint: every load, resuming with ``--ckpt_path`` included, goes through
``vitkit.weights.io.load_pickle_safely`` (``torch.load(weights_only=True)``). ``vitkit fit|validate|test|predict``
install it (``vitkit.trainer``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from vitkit.weights.io import load_pickle_safely


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` through ``write(binary file)`` so that it appears complete or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _fsync_folder(folder: Path) -> None:
    """Flush the folder entry of a rename to the disk (POSIX; a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
