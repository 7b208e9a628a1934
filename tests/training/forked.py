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


def _child(args: list[str], callbacks: list[Callback]) -> int:
    torch.set_num_threads(1)  # as DataLoader workers do after a fork; also the same arithmetic in every run
    if callbacks:
        import vitkit.trainer

        plain = vitkit.trainer.VitkitCLI.instantiate_trainer

        def with_callbacks(self, **kwargs):
            trainer = plain(self, **kwargs)
            trainer.callbacks.extend(callbacks)
            return trainer

        vitkit.trainer.VitkitCLI.instantiate_trainer = with_callbacks  # in the child only
    from vitkit.cli import main

    return main(args)


def run_forked(args: list[str], *, callbacks: list[Callback] = ()) -> int:
    """Run ``vitkit <args>`` in a forked child, with extra trainer ``callbacks``; its exit status (``-SIGKILL`` when
    killed)."""
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            code = _child(args, list(callbacks))
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def task_args(task: str, detection_root: Path) -> list[str]:
    """Small runs of each task: the digits configs on tiny presets, with dropout (and for classification stochastic
    depth and mixup) on; detection on ``detection_root`` (the ``small_detection_root`` fixture) at 48 pixels."""
    if task == "classification":
        return ["-c", str(ROOT / "configs/vit/digits.yaml"), "--data.batch_size", "32",
                "--model.init_args.drop_path_rate", "0.1", "--model.init_args.mixup_alpha", "0.2"]
    if task == "generation":
        return ["-c", str(ROOT / "configs/image_transformer/digits.yaml"), "--data.batch_size", "16",
                "--model.init_args.model", "image_transformer_test", "--model.init_args.num_samples", "0",
                "--model.init_args.model_kwargs", '{"drop_rate": 0.1}']
    return ["-c", str(ROOT / "configs/detr/digits.yaml"), "--trainer.max_time", "null",
            "--data.dataset", "coco", "--data.root", str(detection_root), "--data.image_size", "48",
            "--data.train_ann", "annotations/instances_train.json", "--data.val_ann", "annotations/instances_val.json",
            "--data.train_images", "train", "--data.val_images", "val", "--data.batch_size", "4",
            "--model.init_args.model", "detr_test", "--model.init_args.model_kwargs", '{"num_queries": 6}']


def validation_rows(run_dir: Path) -> list[dict[str, float]]:
    """The rows of ``metrics.csv`` that hold validation metrics, as floats."""
    with open(run_dir / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if any(k.startswith("val/") and r[k] for k in r)]
    return [{k: float(v) for k, v in r.items() if v} for r in rows]
