"""Writing ``vitkit predict`` results of a classifier to ``predictions.csv`` in the run folder."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from vitkit.atomic import atomic_write_text


class ClassificationPredictionWriter(BasePredictionWriter):
    """One row per image: index in the predicted split, predicted class (index and name), confidence, true label.

    Rows are keyed by the image's index in the split, gathered from every process (a distributed sampler pads the
    split with repeats: each index is written once) and written in index order by rank zero at the end of the epoch,
    to ``<run folder>/predictions.csv`` (atomically).
    """

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")

    def write_on_epoch_end(self, trainer, pl_module, predictions: list[dict[str, Any]], batch_indices) -> None:
        rows = _gather_rows(_rows(predictions, batch_indices[0] if batch_indices else []))
        log_dir = trainer.log_dir  # on every process: Lightning broadcasts it from rank zero
        if not trainer.is_global_zero or not rows:
            return
        names = pl_module.class_names
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["index", "pred", "pred_name", "confidence", "label"])
        for index in sorted(rows):
            pred, conf, label = rows[index]
            writer.writerow([index, pred, names[pred], f"{conf:.6f}", label])
        atomic_write_text(Path(log_dir or trainer.default_root_dir) / "predictions.csv", text.getvalue())


def _rows(predictions: list[dict[str, Any]], indices: list[list[int]]) -> dict[int, tuple[int, float, Any]]:
    """``{split index: (pred, confidence, label or "")}``; indices count up from 0 when Lightning gave none."""
    rows, counter = {}, 0
    for b, batch in enumerate(predictions):
        labels = batch.get("label")
        for i, (p, c) in enumerate(zip(batch["pred"].tolist(), batch["confidence"].tolist(), strict=True)):
            index = indices[b][i] if b < len(indices) else counter
            rows[int(index)] = (int(p), float(c), "" if labels is None else int(labels[i]))
            counter += 1
    return rows


def _gather_rows(rows: dict[int, tuple]) -> dict[int, tuple]:
    """Every process's rows, the first (in rank order) kept for an index several have."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return rows
    parts: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, rows)
    merged: dict[int, tuple] = {}
    for part in parts:
        for index, row in part.items():
            merged.setdefault(index, row)
    return merged
