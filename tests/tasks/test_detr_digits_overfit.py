"""Overfit sanity through the CLI (issue 5): configs/detr/digits.yaml memorises 8 training canvases, AP50 ≥ 0.9.

Slow (~30 s on one thread): run with ``pytest -m slow``; ``scripts/detr_overfit_sanity.py`` is the same check by hand.
"""

import csv
from pathlib import Path

import pytest

from vitkit.trainer import run_lightning_cli

CONFIG = Path(__file__).parents[2] / "configs" / "detr" / "digits.yaml"


@pytest.mark.slow
def test_digits_config_memorises_one_batch(tmp_path, digits_detection_root):
    cli = run_lightning_cli([
        "fit", "-c", str(CONFIG), f"--trainer.default_root_dir={tmp_path}", "--trainer.accelerator", "cpu",
        "--trainer.overfit_batches", "1", "--trainer.max_epochs", "300", "--trainer.max_time", "null",
        "--trainer.check_val_every_n_epoch", "100", "--trainer.enable_progress_bar", "false",
        "--data.root", str(digits_detection_root), "--data.batch_size", "8", "--data.augment", "none",
        "--data.val_ann", "annotations/instances_train.json", "--data.val_images", "train",
        "--model.init_args.model_kwargs.drop_rate", "0.0", "--model.init_args.model_kwargs.attn_drop_rate", "0.0",
    ])
    assert cli.trainer.global_step == 300
    with open(Path(cli.trainer.log_dir) / "metrics.csv", newline="") as f:
        ap50 = [float(row["val/AP50"]) for row in csv.DictReader(f) if row.get("val/AP50")]
    assert len(ap50) == 3 and ap50[0] < 0.9 <= ap50[-1], ap50  # learnt here, not by chance at the start
