"""``--ckpt_path last`` resumes the run's newest checkpoint whatever the logger, and starts fresh, saying so in one
line, only when the run has none yet — so one command serves a first SLURM submission and every requeue.

Each logger is given explicitly, as a user would (``--trainer.logger <class> --trainer.logger.save_dir D``): the
default pair, CSVLogger, TensorBoardLogger, WandbLogger offline and MLFlowLogger on a file store. Run 1 trains epoch
0; run 2, the same command with ``--ckpt_path last`` and one more epoch, must start at run 1's last step (a fresh
start would begin at step 0 and also end at step 4 — so the first step it trains is what is checked).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from forked import ROOT, run_forked
from lightning.pytorch.callbacks import Callback

from vitkit.weights.io import load_pickle_safely

LOGGERS = {
    "default": [],
    "csv": ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", "{dir}"],
    "tensorboard": ["--trainer.logger", "lightning.pytorch.loggers.TensorBoardLogger",
                    "--trainer.logger.save_dir", "{dir}"],
    "wandb": ["--trainer.logger", "lightning.pytorch.loggers.WandbLogger", "--trainer.logger.save_dir", "{dir}",
              "--trainer.logger.offline", "true", "--trainer.logger.project", "resume"],
    "mlflow": ["--trainer.logger", "lightning.pytorch.loggers.MLFlowLogger", "--trainer.logger.save_dir", "{dir}",
               "--trainer.logger.tracking_uri", "file:{dir}"],
}
NEEDS = {"wandb": "wandb", "mlflow": "mlflow"}


class FirstStep(Callback):
    """Writes the global step of the run's first training batch to a file."""

    def __init__(self, path: Path) -> None:
        self.path, self.done = path, False

    def on_train_batch_start(self, trainer, *args) -> None:
        if not self.done:
            self.path.write_text(json.dumps(trainer.global_step))
            self.done = True


def _fit(tmp_path: Path, logger: str, epochs: int, *extra: str, first: Path | None = None) -> int:
    args = ["fit", "-c", str(ROOT / "configs/vit/digits.yaml"), "--trainer.max_epochs", str(epochs),
            "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--run_name", "r", f"--trainer.default_root_dir={tmp_path / 'runs'}",
            *[a.format(dir=tmp_path / "logs") for a in LOGGERS[logger]], *extra]
    return run_forked(args, callbacks=[FirstStep(first)] if first else [])


@pytest.mark.parametrize("logger", list(LOGGERS))
def test_ckpt_path_last_resumes_with_any_logger(logger, tmp_path, monkeypatch, capfd):
    if logger in NEEDS:
        pytest.importorskip(NEEDS[logger])
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow's file store is in maintenance mode, still works
    assert _fit(tmp_path, logger, 1) == 0
    first = tmp_path / "first_step.json"
    assert _fit(tmp_path, logger, 2, "--ckpt_path", "last", first=first) == 0
    err = capfd.readouterr().err
    assert "--ckpt_path last: resuming from" in err, err[-2000:]
    assert json.loads(first.read_text()) == 2  # the resumed run begins where run 1 ended, not at step 0
    lasts = sorted((tmp_path / ("runs" if logger == "default" else "logs")).rglob("checkpoints/last.ckpt"),
                   key=lambda p: p.stat().st_mtime_ns)
    assert len(lasts) == 2  # run 2 wrote into its own new version
    assert load_pickle_safely(lasts[-1])["global_step"] == 4


def test_ckpt_path_last_without_a_previous_run_starts_fresh_and_says_so(tmp_path, capfd):
    first = tmp_path / "first_step.json"
    assert _fit(tmp_path, "csv", 1, "--ckpt_path", "last", first=first) == 0
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "--ckpt_path last" in line]
    assert len(lines) == 1 and "no checkpoint of run" in lines[0] and "starting from scratch" in lines[0], err[-2000:]
    assert json.loads(first.read_text()) == 0
