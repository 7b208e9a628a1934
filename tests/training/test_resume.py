"""A run killed with SIGKILL mid-epoch and resumed with ``--ckpt_path last`` ends exactly where an uninterrupted run
ends: the same weights (bit for bit) and the same validation metrics, for each task.

Each run is a forked child (``forked.run_forked``): an uninterrupted run A, a run B killed by SIGKILL right after
optimiser step 14 (the last checkpoint was written at step 12, mid-way through the second epoch, so two steps are
lost and redone), and B resumed. Deterministic mode, CPU, one thread. The configs (``forked.task_args``) switch on the
randomness a resume could get wrong: augmentation, stochastic depth and mixup (classification), dropout
(generation, detection).
"""

from __future__ import annotations

import signal

import pytest
import torch
from forked import KillAtStep, run_forked, task_args, validation_rows

from vitkit.weights.io import load_pickle_safely

# 10 steps per epoch, 2 epochs; last.ckpt every 4 steps (at 4, 8, 12, ...); killed after step 14
COMMON = ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "10", "--trainer.limit_val_batches", "2",
          "--trainer.deterministic", "true", "--trainer.enable_progress_bar", "false",
          "--trainer.enable_model_summary", "false", "--trainer.num_sanity_val_steps", "0",
          "--trainer.check_val_every_n_epoch", "1", "--checkpoint_every_n_steps", "4"]
KILL_AT = 14


@pytest.mark.parametrize("task", ["classification", "generation", "detection"])
def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(task, tmp_path, small_detection_root):
    args = ["fit", *task_args(task, small_detection_root), *COMMON, f"--trainer.default_root_dir={tmp_path}"]
    assert run_forked([*args, "--run_name", "whole"]) == 0
    assert run_forked([*args, "--run_name", "cut"], callbacks=[KillAtStep(KILL_AT)]) == -signal.SIGKILL
    killed = tmp_path / "cut" / "version_0"
    assert load_pickle_safely(killed / "checkpoints" / "last.ckpt")["global_step"] == 12  # mid-epoch 2
    assert not list(killed.glob("checkpoints/.*tmp*")), "a half-written checkpoint was left behind"
    assert run_forked([*args, "--run_name", "cut", "--ckpt_path", "last"]) == 0

    whole = load_pickle_safely(tmp_path / "whole" / "version_0" / "checkpoints" / "last.ckpt")
    resumed = load_pickle_safely(tmp_path / "cut" / "version_1" / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == whole["global_step"] == 20
    for key, value in whole["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), f"{key} differs after the resume"
    final = validation_rows(tmp_path / "whole" / "version_0")[-1]
    assert validation_rows(tmp_path / "cut" / "version_1")[-1] == final  # the same numbers, every one of them
    assert validation_rows(killed)[0] == validation_rows(tmp_path / "whole" / "version_0")[0]
