"""Per-class evaluation reports: a classifier's confusion matrix and per-class accuracy equal an explicit count over
its predictions; a detector's per-class AP equals pycocotools run on one category at a time. Both are written as
CSV and PNG under ``<run>/evaluation`` and summarised after a test."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging

import pytest
import torch
from lightning import Trainer
from torch import nn
from torch.utils.data import DataLoader

from vitkit.tasks import ClassificationTask

NAMES = ["ant", "bee", "cat"]


def _batches(n: int = 40, batch: int = 8) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(n, 3, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
    return DataLoader([{"image": x, "label": y} for x, y in zip(images, labels, strict=True)], batch_size=batch)


def _rows(path) -> list[list[str]]:
    return list(csv.reader(path.open()))


def test_confusion_matrix_and_per_class_accuracy_equal_an_explicit_count(tmp_path, caplog):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    task = ClassificationTask(model, num_classes=3, class_names=NAMES)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="vitkit"):
        trainer.validate(task, dataloaders=_batches(), verbose=False)
        trainer.test(task, dataloaders=_batches(), verbose=False)
    expected = [[0] * 3 for _ in range(3)]  # the reference: count (true, predicted) pairs one image at a time
    with torch.no_grad():
        for batch in _batches():
            for pred, label in zip(model(batch["image"]).argmax(-1).tolist(), batch["label"].tolist(), strict=True):
                expected[label][pred] += 1
    folder = tmp_path / "evaluation"
    for stage in ("val", "test"):
        matrix = _rows(folder / f"{stage}_confusion_matrix.csv")
        assert matrix[0][1:] == NAMES and [r[0] for r in matrix[1:]] == NAMES
        assert [[int(v) for v in r[1:]] for r in matrix[1:]] == expected
        per_class = _rows(folder / f"{stage}_per_class_accuracy.csv")[1:]
        for k, (name, images, correct, accuracy) in enumerate(per_class):
            assert (name, int(images), int(correct)) == (NAMES[k], sum(expected[k]), expected[k][k])
            assert float(accuracy) == pytest.approx(expected[k][k] / sum(expected[k]), abs=1e-6)
        assert (folder / f"{stage}_confusion_matrix.png").stat().st_size > 1000
    assert "test per-class accuracy (weakest first): " in caplog.text


def test_per_class_ap_equals_pycocotools_per_category(tmp_path, caplog):
    from oracle import OracleDetectionTask
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from vitkit.data import VisionDataModule
    from vitkit.data.digits_detection import LAYOUT, write_digits_detection

    root = tmp_path / "set"
    write_digits_detection(root, counts={"train": 2, "val": 12})
    dm = VisionDataModule("coco", root=str(root), task="detection", image_size=64, batch_size=8, num_workers=0,
                          **LAYOUT)
    task = OracleDetectionTask("detr_test", num_classes=dm.num_classes, class_names=dm.class_names,
                               category_ids=dm.category_ids, model_kwargs={"num_queries": 6})
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.validate(task, datamodule=dm, verbose=False)
    table = _rows(tmp_path / "evaluation" / "val_per_class_ap.csv")
    assert table[0] == ["class", "category_id", "AP", "AP50", "AP75"] and len(table) == 1 + dm.num_classes
    (tmp_path / "results.json").write_text(json.dumps(task.last_predictions))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / LAYOUT["val_ann"]))
        detections = gt.loadRes(str(tmp_path / "results.json"))
        for name, category, ap, ap50, ap75 in table[1:]:
            ev = COCOeval(gt, detections, "bbox")
            ev.params.catIds = [int(category)]  # the reference: COCO's own AP of this category alone
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            assert name == dm.class_names[dm.category_ids.index(int(category))]
            assert [float(ap), float(ap50), float(ap75)] == pytest.approx(list(ev.stats[:3]), abs=2e-6), name
    assert (tmp_path / "evaluation" / "val_precision_recall.png").stat().st_size > 1000
