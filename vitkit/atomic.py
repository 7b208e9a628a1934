"""Files that are either wholly written or not there: checkpoints and results survive a process killed mid-write.

``atomic_write(path, write)`` has ``write`` fill a temporary file in the same folder, flushes it to the disk, then
renames it over ``path`` (``os.replace``: atomic within one file system) and flushes the folder entry. A process
killed at any moment leaves either the previous file or the new one, never a truncated one; a leftover temporary
(``.<name>.tmp-<pid>``) is all that can remain.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


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
