"""Evaluation figures: a classifier's confusion matrix, a detector's precision–recall curves and per-class AP."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vitkit.viz.figures import pyplot, save_figure

MAX_ANNOTATED = 20  # classes up to which every cell of a confusion matrix shows its count


def confusion_matrix_figure(matrix: np.ndarray, class_names: Sequence[str], out: str | Path, *,
                            title: str = "") -> Path:
    """``matrix[t, p]``: images of true class ``t`` predicted as ``p``. Cells are coloured by the fraction of their
    row (so the diagonal is each class's accuracy) and, for up to 20 classes, labelled with their counts."""
    plt = pyplot()
    k = len(class_names)
    rows = matrix.sum(axis=1, keepdims=True)
    fractions = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)  # (K, K)
    side = min(max(4.0, 0.45 * k + 2), 16)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    shown = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if k <= MAX_ANNOTATED:
        for t in range(k):
            for p in range(k):
                if matrix[t, p]:
                    ax.text(p, t, str(int(matrix[t, p])), ha="center", va="center", fontsize=7,
                            color="white" if fractions[t, p] > 0.5 else "black")
    ticks = np.arange(k) if k <= 50 else np.linspace(0, k - 1, 10).astype(int)
    ax.set_xticks(ticks, [class_names[i] for i in ticks], rotation=90 if k > 10 else 0, fontsize=7)
    ax.set_yticks(ticks, [class_names[i] for i in ticks], fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out, dpi=120)


def precision_recall_figure(recall: np.ndarray, precision: np.ndarray, ap: Sequence[float], ap50: Sequence[float],
                            class_names: Sequence[str], out: str | Path, *, title: str = "") -> Path:
    """Left: precision against recall at IoU 0.50 for each class (``precision`` ``(K, R)`` at ``recall`` ``(R,)``
    thresholds, NaN where a class has no ground truth). Right: each class's AP (IoU 0.50:0.95) and AP50."""
    plt = pyplot()
    k = len(class_names)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [1.2, 1]})
    colours = plt.get_cmap("tab10" if k <= 10 else "tab20")
    for i in range(k):
        if not np.isnan(precision[i]).all():
            left.plot(recall, precision[i], color=colours(i % colours.N), lw=1.5,
                      label=f"{class_names[i]} (AP50 {ap50[i]:.2f})")
    left.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title="precision–recall at IoU 0.50")
    left.grid(alpha=0.3)
    if k <= 20:
        left.legend(fontsize=7, loc="best")
    y = np.arange(k)
    right.barh(y - 0.2, np.nan_to_num(ap), height=0.4, label="AP (IoU 0.50:0.95)")
    right.barh(y + 0.2, np.nan_to_num(ap50), height=0.4, label="AP50")
    right.set_yticks(y, class_names, fontsize=7 if k > 10 else 9)
    right.invert_yaxis()
    right.set(xlim=(0, 1), xlabel="average precision", title="per class")
    right.legend(fontsize=7, loc="lower right")
    right.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out, dpi=120)
