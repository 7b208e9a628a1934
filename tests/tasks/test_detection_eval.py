"""Detection evaluation end to end with a non-zero AP: predictions made from the validation targets (perturbed, see
tests/oracle.py) go through the task's real evaluation path — post-processing, scaling to the original image,
category ids, COCO evaluation against the annotation file — and the AP it logs equals pycocotools run independently
on the exported results file against the annotation file. A bug that puts the boxes anywhere but where they belong
(scaled to a 1×1 image, say) brings the AP to 0 and fails this test."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from lightning import Trainer
from oracle import OracleDetectionTask

from vitkit.data import VisionDataModule
from vitkit.data.digits_detection import LAYOUT, write_digits_detection


def test_evaluation_of_perturbed_targets_gives_the_pycocotools_ap(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    root = tmp_path / "set"
    write_digits_detection(root, counts={"train": 4, "val": 24})
    dm = VisionDataModule("coco", root=str(root), task="detection", image_size=64, batch_size=8, num_workers=0,
                          **LAYOUT)
    task = OracleDetectionTask("detr_test", num_classes=dm.num_classes, class_names=dm.class_names,
                               category_ids=dm.category_ids, model_kwargs={"num_queries": 6})
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    metrics = trainer.validate(task, datamodule=dm, verbose=False)[0]
    assert 0.3 < metrics["val/AP"] < 0.95 and metrics["val/AP50"] > 0.5, metrics  # perturbed: good, not perfect

    results = tmp_path / "results.json"
    results.write_text(json.dumps(task.last_predictions))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / LAYOUT["val_ann"]))
        ev = COCOeval(gt, gt.loadRes(str(results)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert metrics["val/AP"] == pytest.approx(ev.stats[0], abs=1e-6)
    assert metrics["val/AP50"] == pytest.approx(ev.stats[1], abs=1e-6)
    categories = {a["category_id"] for a in gt.dataset["annotations"]}
    assert {r["category_id"] for r in task.last_predictions} <= categories  # ids of the file, not labels 0..K-1
