"""DetectionTask with an RT-DETR: the criterion follows the family (varifocal loss, denoising queries, sigmoid
post-processing), through the same training, COCO evaluation and prediction."""

import json
from pathlib import Path

import torch
from lightning import Trainer

from tests.tasks.test_detection_task import CATEGORY_IDS, Shapes, collate, loader
from vitkit.cli import main
from vitkit.detection import RTDETRCriterion, postprocess
from vitkit.tasks import DetectionTask


def make_task(**kw) -> DetectionTask:
    return DetectionTask("rtdetr_test", num_classes=3, class_names=["a", "b", "c"], category_ids=CATEGORY_IDS,
                         img_size=64, **kw)


def test_fit_with_denoising_and_coco_evaluation(tmp_path):
    task = make_task()
    assert isinstance(task.criterion, RTDETRCriterion) and task.model.config.num_denoising > 0
    batch = collate([Shapes(4)[i] for i in (1, 2, 3)])
    dn = task.denoising_group(batch["targets"])
    assert dn is not None and dn.queries.shape[1] == 2 * 2 * dn.num_groups  # up to 2 objects: positive + negative
    trainer = Trainer(max_epochs=1, default_root_dir=tmp_path, accelerator="cpu", enable_progress_bar=False,
                      logger=False, num_sanity_val_steps=0)
    trainer.fit(task, train_dataloaders=loader(), val_dataloaders=loader())
    metrics = trainer.callback_metrics
    assert {"train/loss", "val/loss_vfl", "val/loss_giou", "val/AP", "val/AP50"} <= set(metrics)
    assert torch.isfinite(metrics["train/loss"])
    results = task.predict_step(batch, 0)
    assert all(set(r["labels"].tolist()) <= set(CATEGORY_IDS) for r in results)
    assert all(len(r["scores"]) == task.model.config.num_queries for r in results)  # best (query, class) pairs



def test_sigmoid_postprocess_equals_hugging_faces():
    from transformers import RTDetrImageProcessor

    g = torch.Generator().manual_seed(0)
    logits, boxes = torch.randn(2, 10, 4, generator=g), torch.rand(2, 10, 4, generator=g) * 0.5 + 0.25
    sizes = torch.tensor([[64, 96], [80, 80]])
    ours = postprocess({"pred_logits": logits, "pred_boxes": boxes}, sizes, activation="sigmoid", threshold=0.3)

    class Out:
        pass

    out = Out()
    out.logits, out.pred_boxes = logits, boxes
    theirs = RTDetrImageProcessor().post_process_object_detection(out, threshold=0.3, target_sizes=sizes)
    for a, b in zip(ours, theirs, strict=True):
        order = b["scores"].argsort(descending=True)
        assert torch.allclose(a["scores"], b["scores"][order])
        assert torch.equal(a["labels"], b["labels"][order])
        assert torch.allclose(a["boxes"], b["boxes"][order], atol=1e-4)


def test_detect_and_predict_from_a_cli_checkpoint(digits_detection_root, tmp_path):
    """`vitkit detect` and `vitkit predict` on an RT-DETR checkpoint of `vitkit fit`: drawings and records with the
    checkpoint's preprocessing; --attention (DETR's dense cross-attention maps) is refused in one line."""
    config = Path(__file__).parents[2] / "configs" / "rtdetr" / "digits.yaml"
    assert main(["fit", "-c", str(config), "--data.root", str(digits_detection_root), "--trainer.max_epochs", "1",
                 "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
                 "--trainer.enable_progress_bar", "false", f"--trainer.default_root_dir={tmp_path}"]) == 0
    (ckpt,) = tmp_path.glob("*/version_0/checkpoints/last.ckpt")
    images = sorted((digits_detection_root / "val").glob("*.png"))[:2]
    out = tmp_path / "detect"
    assert main(["detect", "--ckpt", str(ckpt), *map(str, images), "--out", str(out), "--threshold", "0"]) == 0
    records = json.loads((out / "detections.json").read_text())
    assert len(records) == 2 * 20 and {r["image_id"] for r in records} == {1, 2}  # every (query, class) pair kept
    assert main(["predict", "--ckpt", str(ckpt), *map(str, images), "--out", str(tmp_path / "p.json"),
                 "--threshold", "0"]) == 0
    predicted = json.loads((tmp_path / "p.json").read_text())["detections"]  # the same preprocessing, batched
    ids = [(r["image_id"], r["category_id"]) for r in records]
    assert [(r["image_id"], r["category_id"]) for r in predicted] == ids
    assert torch.allclose(torch.tensor([[r["score"], *r["bbox"]] for r in predicted]),
                          torch.tensor([[r["score"], *r["bbox"]] for r in records]), atol=1e-4)
    assert main(["detect", "--ckpt", str(ckpt), str(images[0]), "--out", str(tmp_path / "o2"), "--attention", "2"]) == 2
