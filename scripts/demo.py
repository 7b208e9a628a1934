"""`make demo`: train the digits ViT, test it on the held-out split, and draw its predictions with attention rollout.

Equivalent to `vitkit fit -c configs/vit/digits.yaml`, then `vitkit test` on the best checkpoint, then
`vitkit attention --ckpt <best> --out <run>/attention.png`.
"""

from __future__ import annotations

import time
from pathlib import Path

from vitkit.commands.attention import write_attention_figure
from vitkit.trainer import run_lightning_cli


def main() -> None:
    start = time.perf_counter()
    cli = run_lightning_cli(["fit", "-c", "configs/vit/digits.yaml"])
    trainer = cli.trainer
    best = trainer.checkpoint_callback.best_model_path
    (results,) = trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best, verbose=False)
    run_dir = Path(trainer.log_dir)
    figure = write_attention_figure(best, run_dir / "attention.png", datamodule=cli.datamodule)
    n_test = len(cli.datamodule.dataset("test"))
    print()
    print(f"digits test accuracy: {results['test/acc1']:.4f} on {n_test} held-out images "
          f"(best checkpoint by val accuracy: {Path(best).name})")
    print(f"run directory:        {run_dir}  (checkpoints/, metrics.csv, TensorBoard events, config.yaml)")
    print(f"attention figure:     {figure}")
    print(f"time:                 {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
