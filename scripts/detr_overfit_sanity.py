"""DETR overfit sanity through the CLI (issue 5): train ``configs/detr/digits.yaml`` on a handful of training
canvases with Lightning's ``overfit_batches`` and evaluate on those same canvases; AP50 must reach ``--target``.

``overfit_batches=1`` trains on the first batch of the (then unshuffled) training set and validates on the first
batch of the validation file, which ``--data.val_ann``/``--data.val_images`` point at the training canvases, so both
are the same ``--images`` canvases. Augmentation and dropout are off: the point is to memorise. A run that cannot
memorise a few images has a bug (targets, matching, losses, post-processing, evaluation), not slow convergence.

    OMP_NUM_THREADS=1 python scripts/detr_overfit_sanity.py                  # about 30 s on one CPU thread
    OMP_NUM_THREADS=1 python scripts/detr_overfit_sanity.py --epochs 400 -- --model.init_args.lr 2e-4

Arguments after ``--`` go to ``vitkit fit`` unchanged. Exit status 0 when the last val/AP50 reaches the target.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from vitkit.cli import main as vitkit_main

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "detr" / "digits.yaml"


def fit_arguments(args: argparse.Namespace) -> list[str]:
    """The ``vitkit fit`` command line of the sanity run."""
    return [
        "fit", "-c", str(CONFIG), "--run_name", args.run_name,
        "--trainer.overfit_batches", "1", "--trainer.max_epochs", str(args.epochs),
        "--trainer.max_time", "null", "--trainer.check_val_every_n_epoch", str(args.val_every),
        "--trainer.enable_progress_bar", "false",
        "--data.batch_size", str(args.images), "--data.augment", "none",
        "--data.val_ann", "annotations/instances_train.json", "--data.val_images", "train",
        "--model.init_args.model_kwargs.drop_rate", "0.0", "--model.init_args.model_kwargs.attn_drop_rate", "0.0",
        *args.extra,
    ]


def val_ap50(run_dir: Path) -> list[tuple[int, float]]:
    """``(step, val/AP50)`` of every validation logged in ``run_dir/metrics.csv``."""
    with open(run_dir / "metrics.csv", newline="") as f:
        return [(int(row["step"]), float(row["val/AP50"])) for row in csv.DictReader(f) if row.get("val/AP50")]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=8, help="canvases to memorise (one batch)")
    p.add_argument("--epochs", type=int, default=300, help="optimiser steps (one batch per epoch)")
    p.add_argument("--val_every", type=int, default=50)
    p.add_argument("--target", type=float, default=0.9)
    p.add_argument("--run_name", default="detr_overfit_sanity")
    p.add_argument("extra", nargs="*", help="more `vitkit fit` arguments (after --)")
    args = p.parse_args()
    argv = fit_arguments(args)
    print("vitkit " + " ".join(argv), flush=True)
    if vitkit_main(argv) != 0:
        return 2
    run_dir = max((Path("runs") / args.run_name).glob("version_*"), key=lambda d: int(d.name.split("_")[1]))
    history = val_ap50(run_dir)
    for step, ap50 in history:
        print(f"step {step + 1:5d}  val/AP50 {ap50:.3f}")
    final = history[-1][1] if history else 0.0
    print(f"{run_dir}: AP50 on the {args.images} memorised canvases = {final:.3f} (target {args.target})")
    return 0 if final >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
