"""Running ``vitkit`` CLI commands in forked child processes: isolated from the test process (global seeds,
deterministic mode, threads), sharing its imports (no start-up cost), and killable with SIGKILL."""

from __future__ import annotations

import csv
import os
import signal
import sys
import traceback
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

ROOT = Path(__file__).parents[2]


class KillAtStep(Callback):
    """SIGKILL this process right after optimiser step ``step`` (no clean-up runs: as a lost node or OOM kill)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def _child(args: list[str], kill_at_step: int | None) -> int:
    torch.set_num_threads(1)  # as DataLoader workers do after a fork; also the same arithmetic in every run
    if kill_at_step is not None:
        import vitkit.trainer

        plain = vitkit.trainer.VitkitCLI.instantiate_trainer

        def with_killer(self, **kwargs):
            trainer = plain(self, **kwargs)
            trainer.callbacks.append(KillAtStep(kill_at_step))
            return trainer

        vitkit.trainer.VitkitCLI.instantiate_trainer = with_killer  # in the child only
    from vitkit.cli import main

    return main(args)


def run_forked(args: list[str], *, kill_at_step: int | None = None) -> int:
    """Run ``vitkit <args>`` in a forked child; its exit status (``-SIGKILL`` when killed)."""
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            code = _child(args, kill_at_step)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def validation_rows(run_dir: Path) -> list[dict[str, float]]:
    """The rows of ``metrics.csv`` that hold validation metrics, as floats."""
    with open(run_dir / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if any(k.startswith("val/") and r[k] for k in r)]
    return [{k: float(v) for k, v in r.items() if v} for r in rows]
