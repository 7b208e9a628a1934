"""`make demo`: train the digits ViT, test it on the held-out split, and draw its predictions with attention rollout.

Equivalent to `vitkit fit -c configs/vit/digits.yaml`, then `vitkit test` on the final checkpoint (`last.ckpt`), then
`vitkit attention --ckpt <run>/checkpoints/last.ckpt --out <run>/attention.png`.
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
    run_dir = Path(trainer.log_dir)
    final = run_dir / "checkpoints" / "last.ckpt"  # end of the cosine schedule; 143 val images are too few to pick by
    (results,) = trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=str(final), verbose=False)
    figure = write_attention_figure(final, run_dir / "attention.png", datamodule=cli.datamodule)
    n_test = len(cli.datamodule.dataset("test"))
    print()
    print(f"digits test accuracy: {results['test/acc1']:.4f} on {n_test} held-out images (final weights, {final.name})")
    print(f"run directory:        {run_dir}  (checkpoints/, metrics.csv, TensorBoard events, config.yaml)")
    print(f"attention figure:     {figure}")
    print(f"time:                 {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
