"""Writing ``vitkit predict`` results of a classifier to ``predictions.csv`` in the run folder."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import BasePredictionWriter


class ClassificationPredictionWriter(BasePredictionWriter):
    """One row per image: index in the predicted split, predicted class (index and name), confidence, true label.

    Written by rank zero at the end of the epoch, to ``<run folder>/predictions.csv`` (rewritten atomically).
    """

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")

    def write_on_epoch_end(self, trainer, pl_module, predictions: list[dict[str, Any]], batch_indices) -> None:
        if not trainer.is_global_zero or not predictions:
            return
        names = pl_module.class_names
        out = Path(trainer.log_dir or trainer.default_root_dir) / "predictions.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "pred", "pred_name", "confidence", "label"])
            index = 0
            for batch in predictions:
                labels = batch.get("label")
                for i, (p, c) in enumerate(zip(batch["pred"].tolist(), batch["confidence"].tolist(), strict=True)):
                    label = "" if labels is None else int(labels[i])
                    writer.writerow([index, p, names[p], f"{c:.6f}", label])
                    index += 1
        tmp.replace(out)
