"""Resuming a run: mid-epoch checkpoints and finding the run's last checkpoint.

A run killed at any moment (SIGKILL, a node lost, a job pre-empted) continues with ``--ckpt_path last`` and ends
with the same weights and metrics as a run that was never interrupted (deterministic mode). The pieces:

- ``StepCheckpoint``: rewrites ``checkpoints/last.ckpt`` every N optimiser steps (``--checkpoint_every_n_steps N``),
  beside the tasks' end-of-epoch ``last.ckpt``, so a long epoch is not lost;
- the checkpoint holds the data position (``vitkit.data.sampling``) and every process's random states
  (``vitkit.training.rng_state``), besides what Lightning saves (weights, optimiser, schedule, loop counters);
- files are written atomically (``vitkit.training.atomic``): a kill mid-write leaves the previous checkpoint;
- ``find_last_checkpoint``: each vitkit run writes a new ``runs/<name>/version_<n>/``, so Lightning's own ``"last"``
  (which looks in the new, empty folder) would silently start over; the CLI resolves ``last`` to the newest
  ``last.ckpt`` of the run's earlier versions instead, and the resumed run logs into a new version folder (Lightning's
  CSV logger would delete the old ``metrics.csv`` if it reused the folder).
"""

from __future__ import annotations

import re
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint


class StepCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` optimiser steps (a subclass, so that the tasks' own
    ``ModelCheckpoint`` callbacks do not replace it)."""

    def __init__(self, every_n_train_steps: int) -> None:
        if every_n_train_steps < 1:
            raise ValueError(f"checkpoint_every_n_steps={every_n_train_steps} must be a positive number of steps")
        super().__init__(filename="last", every_n_train_steps=every_n_train_steps, save_top_k=1,
                         enable_version_counter=False)


def find_last_checkpoint(run_dir: Path) -> Path | None:
    """``<run_dir>/version_<n>/checkpoints/last.ckpt`` of the highest ``n`` that has one, else ``None``."""
    found = []
    for folder in run_dir.glob("version_*"):
        match = re.fullmatch(r"version_(\d+)", folder.name)
        last = folder / "checkpoints" / "last.ckpt"
        if match and last.is_file():
            found.append((int(match.group(1)), last))
    return max(found)[1] if found else None
