"""Fixtures of the training tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_detection_root(tmp_path_factory):
    """A small digits-on-canvas COCO set (48 train / 16 val canvases) for fast detection runs."""
    from vitkit.data.digits_detection import write_digits_detection

    root = tmp_path_factory.mktemp("small_detection")
    write_digits_detection(root, counts={"train": 48, "val": 16})
    return root


@pytest.fixture(scope="session")
def trained_checkpoints(tmp_path_factory, small_detection_root):
    """``{task: last.ckpt}`` of a two-step run of each task (tiny presets), trained once per session."""
    from forked import run_forked, task_args

    root = tmp_path_factory.mktemp("trained")
    found = {}
    for task in ("classification", "generation", "detection"):
        args = ["fit", *task_args(task, small_detection_root), "--trainer.max_epochs", "1",
                "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
                "--trainer.check_val_every_n_epoch", "1", "--trainer.num_sanity_val_steps", "0",
                "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                "--run_name", task, f"--trainer.default_root_dir={root}"]
        assert run_forked(args) == 0, task
        found[task] = root / task / "version_0" / "checkpoints" / "last.ckpt"
    return found


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty offline Hugging Face cache (tests/hub_cache.py)."""
    from tests.hub_cache import offline_hub_cache

    return offline_hub_cache(tmp_path, monkeypatch)
