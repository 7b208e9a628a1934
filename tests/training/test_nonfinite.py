"""A training loss that turns NaN stops the run with an error naming the step and the batch (``nonfinite_loss:
stop``, the default) or skips that batch, leaving the weights finite and counting it (``skip``), for each task.

The NaN is made by a callback: at one optimiser step, the model's output layer returns NaN for that forward pass only.
For DETR the NaN predictions first reach the Hungarian matcher, which cannot match them: that too is the same error.
"""

from __future__ import annotations

import csv

import pytest
import torch
from forked import run_forked, task_args
from lightning.pytorch.callbacks import Callback

from vitkit.weights.io import load_pickle_safely

COMMON = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "0",
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
          "--trainer.log_every_n_steps", "1", "--trainer.check_val_every_n_epoch", "1"]
POISONED_STEP = 2


class PoisonStep(Callback):
    """At optimiser step ``step``, the output layer's forward returns NaN (that batch only)."""

    def __init__(self, step: int) -> None:
        self.step, self.handle = step, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            model = pl_module.model
            head = getattr(model, "class_head", None) or model.head
            self.handle = head.register_forward_hook(lambda module, args, out: out * float("nan"))

    def on_train_batch_end(self, *args) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


def _run(task: str, tmp_path, detection_root, policy: str) -> int:
    args = ["fit", *task_args(task, detection_root), *COMMON, "--model.init_args.nonfinite_loss", policy,
            "--run_name", policy, f"--trainer.default_root_dir={tmp_path}"]
    return run_forked(args, callbacks=[PoisonStep(POISONED_STEP)])


@pytest.mark.parametrize("task", ["classification", "generation", "detection"])
def test_nonfinite_loss_stops_naming_step_and_batch(task, tmp_path, small_detection_root, capfd):
    assert _run(task, tmp_path, small_detection_root, "stop") == 2  # the CLI's exit status for a user-facing error
    err = capfd.readouterr().err
    assert f"vitkit: error: non-finite training loss nan at global step {POISONED_STEP} (epoch 0, batch " \
           f"{POISONED_STEP} of the epoch" in err, err[-3000:]
    assert "Traceback" not in err and "nonfinite_loss skip" in err, err[-3000:]
    if task == "detection":
        assert "image ids [" in err and "matching cost has NaN/inf entries" in err


@pytest.mark.parametrize("task", ["classification", "generation", "detection"])
def test_nonfinite_loss_skip_leaves_the_weights_finite_and_counts_the_batch(task, tmp_path, small_detection_root,
                                                                             capfd):
    assert _run(task, tmp_path, small_detection_root, "skip") == 0
    assert f"at global step {POISONED_STEP}" in capfd.readouterr().err  # the warning
    run = tmp_path / "skip" / "version_0"
    weights = load_pickle_safely(run / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["train/skipped_batches"]) for r in rows if r.get("train/skipped_batches")] == [1.0]
    losses = [float(v) for r in rows for k, v in r.items() if k.startswith("train/") and "loss" in k and v]
    assert losses and all(torch.isfinite(torch.tensor(losses)))  # the skipped batch's NaN is in no logged value
