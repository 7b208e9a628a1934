"""Figures: labelled image grids with attention maps beside them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib's ``pyplot`` on the Agg backend: figures go to files, no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: str | Path, *, dpi: int) -> Path:
    """Write ``fig`` to ``out`` (creating its folder) and free it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    pyplot().close(fig)
    return out


def attention_grid(
    images: np.ndarray,
    maps: np.ndarray,
    titles: Sequence[str],
    correct: Sequence[bool] | None,
    out: str | Path,
    *,
    columns: int = 4,
    suptitle: str = "",
) -> Path:
    """Save a grid of ``(image, attention map over the image)`` pairs.

    ``images``: ``(B, H, W)`` or ``(B, H, W, 3)`` in [0, 1]; ``maps``: ``(B, H, W)`` in [0, 1]; ``titles`` one per
    image, coloured green/red by ``correct`` when given.
    """
    plt = pyplot()
    n = len(images)
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(2 * columns * 1.4, rows * 1.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    grey = images.ndim == 3
    for i in range(n):
        ax_img, ax_map = axes[i // columns, 2 * (i % columns)], axes[i // columns, 2 * (i % columns) + 1]
        ax_img.imshow(images[i], cmap="gray" if grey else None, vmin=0, vmax=1, interpolation="nearest")
        colour = "black" if correct is None else ("green" if correct[i] else "red")
        ax_img.set_title(titles[i], fontsize=8, color=colour)
        ax_map.imshow(maps[i], cmap="inferno", vmin=0, vmax=1, interpolation="bilinear")
        ax_map.set_title("attention", fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out, dpi=120)
