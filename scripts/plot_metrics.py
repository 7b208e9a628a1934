"""Loss curve of a run from its ``metrics.csv`` (CSVLogger): training loss against optimiser steps (raw and a moving
average), validation loss, and validation metrics on a second panel.

    python scripts/plot_metrics.py runs/detr_digits/version_0 --out outputs/detr_digits_loss.png \
        --loss train/loss_step --val val/loss --metrics val/AP50 val/AP
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from vitkit.viz.figures import pyplot, save_figure


def read_series(path: Path, keys: list[str]) -> dict[str, tuple[list[int], list[float]]]:
    """For each key, the ``(steps, values)`` of the rows of ``path`` that hold it."""
    series: dict[str, tuple[list[int], list[float]]] = {k: ([], []) for k in keys}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key in keys:
                if row.get(key):
                    series[key][0].append(int(row["step"]) + 1)
                    series[key][1].append(float(row[key]))
    missing = [k for k, (steps, _) in series.items() if not steps]
    if missing:
        raise SystemExit(f"{path}: no values for {missing}; columns are in its first line")
    return series


def moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="a runs/<name>/version_<n> folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--loss", default="train/loss_step")
    p.add_argument("--val", default="val/loss")
    p.add_argument("--metrics", nargs="*", default=["val/AP50", "val/AP"])
    p.add_argument("--window", type=int, default=10, help="logged points in the moving average")
    p.add_argument("--title", default=None)
    args = p.parse_args()
    s = read_series(args.run_dir / "metrics.csv", [args.loss, args.val, *args.metrics])
    fig, (ax, bx) = pyplot().subplots(1, 2, figsize=(11, 4))
    steps, loss = s[args.loss]
    ax.plot(steps, loss, color="tab:blue", alpha=0.3, lw=0.8, label=args.loss)
    ax.plot(steps, moving_average(loss, args.window), color="tab:blue", label=f"{args.loss} (moving average)")
    ax.plot(*s[args.val], "o-", color="tab:red", label=args.val)
    ax.set(xlabel="optimiser step", ylabel="loss", ylim=(0, None))
    ax.legend()
    for key in args.metrics:
        bx.plot(*s[key], "o-", label=key)
    bx.set(xlabel="optimiser step", ylabel="validation metric", ylim=(0, 1))
    bx.legend()
    fig.suptitle(args.title or str(args.run_dir))
    fig.tight_layout()
    print(save_figure(fig, args.out, dpi=110))


if __name__ == "__main__":
    main()
