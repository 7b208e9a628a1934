"""Resuming a run: mid-epoch checkpoints and finding the run's last checkpoint.

A run killed at any moment (SIGKILL, a node lost, a job pre-empted) continues with ``--ckpt_path last`` and ends
with the same weights and metrics as a run that was never interrupted (deterministic mode). The pieces:

- ``StepCheckpoint``: rewrites ``checkpoints/last.ckpt`` every N optimiser steps (``--checkpoint_every_n_steps N``),
  beside the tasks' end-of-epoch ``last.ckpt``, so a long epoch is not lost;
- the checkpoint holds the data position (``vitkit.data.sampling``) and every process's random states
  (``vitkit.training.rng_state``), besides what Lightning saves (weights, optimiser, schedule, loop counters);
- files are written atomically (``vitkit.training.atomic``): a kill mid-write leaves the previous checkpoint;
- ``resolve_last``: every run logs into a new version of its run (``runs/<name>/version_<n>/`` by default, a new run
  id under W&B or MLflow), and Lightning's own ``"last"`` looks only in the new, empty checkpoint folder, so it would
  silently start over. The CLI resolves ``last`` itself: Lightning keeps checkpoints under
  ``<logger save_dir>/<logger name>/<version>/checkpoints/`` whatever the logger, so the run's earlier versions are
  the folders beside the new one, and the newest ``last.ckpt`` among them is the one to resume. The resumed run
  logs into its new version (Lightning's CSV logger would delete the old ``metrics.csv`` if it reused the folder).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


class StepCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` optimiser steps (a subclass, so that the tasks' own
    ``ModelCheckpoint`` callbacks do not replace it)."""

    def __init__(self, every_n_train_steps: int) -> None:
        if every_n_train_steps < 1:
            raise ValueError(f"checkpoint_every_n_steps={every_n_train_steps} must be a positive number of steps")
        super().__init__(filename="last", every_n_train_steps=every_n_train_steps, save_top_k=1,
                         enable_version_counter=False)


def run_folder(trainer: Any) -> tuple[Path, Path]:
    """``(folder holding the run's versions, this version's checkpoint folder)``, as Lightning places checkpoints:
    ``<save_dir>/<name>/<version>/checkpoints`` of the first logger; without a logger ``<default_root_dir>/
    checkpoints`` (every run of that root is then the same run)."""
    if not trainer.loggers:
        root = Path(trainer.default_root_dir)
        return root, root / "checkpoints"
    logger = trainer.loggers[0]
    root = Path(logger.save_dir or trainer.default_root_dir) / str(logger.name)
    version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
    return root, root / version / "checkpoints"


def find_last_checkpoint(trainer: Any) -> Path | None:
    """The newest ``last.ckpt`` of the run's earlier versions (by modification time), else ``None``."""
    root, _ = run_folder(trainer)
    if not trainer.loggers:
        candidates = [root / "checkpoints" / "last.ckpt"]
    else:
        candidates = list(root.glob("*/checkpoints/last.ckpt"))
    found = [p for p in candidates if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def resolve_last(trainer: Any) -> str | None:
    """``--ckpt_path last``: the run's newest ``last.ckpt``, or ``None`` (start afresh) when it has none yet; one line
    says which."""
    last = find_last_checkpoint(trainer)
    root, _ = run_folder(trainer)
    if last is None:
        log.info("--ckpt_path last: no checkpoint of run %s yet, starting from scratch", root)
        return None
    log.info("--ckpt_path last: resuming from %s", last)
    return str(last)
