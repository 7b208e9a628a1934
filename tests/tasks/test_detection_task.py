"""DetectionTask on synthetic batches that follow the documented batch contract."""

import json

import pytest
import torch
from lightning import Callback, Trainer
from torch.utils.data import DataLoader, Dataset

from vitkit.detection import coco_eval
from vitkit.tasks import DetectionTask
from vitkit.tasks.shell import load_task

CATEGORY_IDS = [3, 7, 11]  # non-contiguous, as in COCO


class Shapes(Dataset):
    """Bright rectangles on noise; rectangle k has class k % 3. Image 0 has no object at all."""

    def __init__(self, n: int, size: int = 64) -> None:
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        s = self.size
        image = torch.randn(3, s, s, generator=g) * 0.1
        count = 0 if i == 0 else 1 + i % 2
        boxes = torch.cat([torch.rand(count, 2, generator=g) * 0.4 + 0.3,
                           torch.rand(count, 2, generator=g) * 0.2 + 0.15], 1)  # normalised cxcywh
        for (cx, cy, w, h) in boxes.tolist():
            image[:, int((cy - h / 2) * s):int((cy + h / 2) * s), int((cx - w / 2) * s):int((cx + w / 2) * s)] += 1.0
        target = {"boxes": boxes, "labels": torch.arange(count) % 3, "image_id": 100 + i, "orig_size": (2 * s, 2 * s)}
        return {"image": image, "target": target}


def collate(samples: list[dict]) -> dict:
    images = torch.stack([s["image"] for s in samples])
    mask = torch.ones(images.shape[0], *images.shape[-2:], dtype=torch.bool)
    return {"image": images, "pixel_mask": mask, "targets": [s["target"] for s in samples]}


def loader(n: int = 6) -> DataLoader:
    return DataLoader(Shapes(n), batch_size=3, collate_fn=collate)


def make_task(**kw) -> DetectionTask:
    return DetectionTask("detr_test", num_classes=3, class_names=["a", "b", "c"], category_ids=CATEGORY_IDS,
                         img_size=64, **kw)


class GradNorm(Callback):
    """Records the gradient norm the optimiser actually steps with (after clipping)."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_train_start(self, trainer, pl_module) -> None:
        def hook(optimizer, *_):
            grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            self.norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))

        trainer.optimizers[0].register_step_post_hook(hook)  # step(closure): grads exist after


def test_fit_evaluates_with_cocoeval_and_exports_results_json(tmp_path):
    task = make_task()
    grads = GradNorm()
    trainer = Trainer(max_epochs=2, default_root_dir=tmp_path, accelerator="cpu", enable_progress_bar=False,
                      logger=False, callbacks=[grads], num_sanity_val_steps=0)
    trainer.fit(task, train_dataloaders=loader(), val_dataloaders=loader())
    metrics = trainer.callback_metrics
    assert {"train/loss", "val/loss", "val/loss_giou", "val/cardinality_error", "val/AP", "val/AP50",
            "val/AP75", "val/APs", "val/APm", "val/APl"} <= set(metrics)
    assert grads.norms and max(grads.norms) <= 0.1 + 1e-5  # the paper's clipping at norm 0.1
    exported = json.loads((tmp_path / "predictions_val.json").read_text())
    assert exported and {e["category_id"] for e in exported} <= set(CATEGORY_IDS)
    assert {e["image_id"] for e in exported} == {100 + i for i in range(6)}

    # pycocotools on the exported file, with a ground truth written here from the dataset, gives the same AP.
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    images, anns = [], []
    for i in range(6):
        t = Shapes(6)[i]["target"]
        images.append({"id": t["image_id"], "height": 128, "width": 128})
        for (cx, cy, w, h), label in zip(t["boxes"].tolist(), t["labels"].tolist(), strict=True):
            box = [(cx - w / 2) * 128, (cy - h / 2) * 128, w * 128, h * 128]
            anns.append({"id": len(anns) + 1, "image_id": t["image_id"], "bbox": box, "area": box[2] * box[3],
                         "category_id": CATEGORY_IDS[label], "iscrowd": 0})
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": c} for c in CATEGORY_IDS]}
    gt.createIndex()
    ev = COCOeval(gt, gt.loadRes(str(tmp_path / "predictions_val.json")), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    for i, name in enumerate(coco_eval.STAT_NAMES):
        assert metrics[f"val/{name}"].item() == pytest.approx(ev.stats[i], abs=1e-6), name

    rebuilt = load_task(tmp_path / "checkpoints" / "last.ckpt", expected=DetectionTask)
    assert rebuilt.category_ids == CATEGORY_IDS and rebuilt.class_names == ["a", "b", "c"]
    assert rebuilt.preprocessing is None  # plain dataloaders: no datamodule to say how images were prepared
    batch = collate([Shapes(2)[1]])
    torch.testing.assert_close(rebuilt(batch["image"])["pred_boxes"], task.eval()(batch["image"])["pred_boxes"])
    from vitkit import create_model  # the Lightning checkpoint also loads as plain DETR weights

    model = create_model("detr_test", num_classes=3, checkpoint=tmp_path / "checkpoints" / "last.ckpt").eval()
    torch.testing.assert_close(model(batch["image"])["pred_logits"], task(batch["image"])["pred_logits"])


def test_optimiser_defaults_are_the_papers():
    task = make_task()
    optimizer = task.configure_optimizers()["optimizer"]
    names = {id(p): n for n, p in task.model.named_parameters()}
    for group in optimizer.param_groups:
        backbone = {names[id(p)].startswith("backbone.") for p in group["params"]}
        assert len(backbone) == 1  # groups never mix backbone and Transformer parameters
        assert group["lr"] == pytest.approx(1e-5 if backbone.pop() else 1e-4)
        assert group["weight_decay"] in (0.0, 1e-4)
    trainable = sum(len(g["params"]) for g in optimizer.param_groups)
    assert trainable == sum(p.requires_grad for p in task.model.parameters())
    frozen = make_task(freeze_backbone=True, lr_backbone=2e-5)
    assert not any(p.requires_grad for p in frozen.model.backbone.parameters())
    assert all(g["lr"] == pytest.approx(1e-4) for g in frozen.configure_optimizers()["optimizer"].param_groups)


def test_warmup_ramps_each_learning_rate_per_step_and_composes_with_the_drop():
    config = make_task(warmup_steps=4).configure_optimizers()
    optimizer, warmup = config["optimizer"], config["lr_scheduler"]
    assert warmup["interval"] == "step"
    seen = []
    for _ in range(6):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        warmup["scheduler"].step()
    for group, lrs in zip(optimizer.param_groups, zip(*seen, strict=True), strict=True):
        peak = 1e-5 if lrs[-1] < 5e-5 else 1e-4  # backbone or Transformer group
        assert lrs == pytest.approx([peak * f for f in (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)]), group
    optimizers, schedulers = make_task(warmup_steps=4, lr_drop_epoch=2).configure_optimizers()
    assert [s["interval"] for s in schedulers] == ["step", "epoch"]
    for _ in range(4):  # through the warm-up, then two epochs: one ×0.1 drop
        optimizers[0].step()
        schedulers[0]["scheduler"].step()
    for _ in range(2):
        schedulers[1]["scheduler"].step()
    assert sorted({round(g["lr"], 12) for g in optimizers[0].param_groups}) == pytest.approx([1e-6, 1e-5])


def test_negative_warmup_is_rejected():
    with pytest.raises(ValueError, match="warmup_steps=-1 must be >= 0"):
        make_task(warmup_steps=-1)


def test_predict_step_returns_original_coordinates_and_category_ids():
    task = make_task().eval()
    batch = collate([Shapes(3)[i] for i in range(3)])
    with torch.no_grad():
        results = task.predict_step(batch, 0)
    assert [r["image_id"] for r in results] == [100, 101, 102]
    assert set(torch.cat([r["labels"] for r in results]).tolist()) <= set(CATEGORY_IDS)
    boxes = torch.cat([r["boxes"] for r in results])
    assert boxes.min() >= -1e-3 and boxes.max() <= 128 + 1e-3  # orig_size 128×128, not the 64×64 input


def test_fine_tuning_reinitialises_the_class_head_only(tmp_path):
    from safetensors.torch import save_file

    from vitkit import create_model

    save_file(create_model("detr_test").state_dict(), str(tmp_path / "five.safetensors"))
    task = make_task(checkpoint=str(tmp_path / "five.safetensors"))
    assert sorted(task.load_report.reinitialized) == ["class_head.bias", "class_head.weight"]


def test_inconsistent_class_description_is_rejected():
    with pytest.raises(ValueError, match="num_classes=3, 2 category ids and 2 class names disagree"):
        DetectionTask("detr_test", num_classes=3, class_names=["a", "b"], category_ids=[1, 2])


def test_detect_command_draws_images_and_writes_coco_results(tmp_path):
    import numpy as np
    from PIL import Image

    from vitkit.cli import main
    from vitkit.data.preprocessing import Preprocessing

    task = make_task()
    trainer = Trainer(max_steps=1, default_root_dir=tmp_path, accelerator="cpu", enable_progress_bar=False,
                      logger=False, enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(task, train_dataloaders=loader(3))
    task.preprocessing = Preprocessing.for_detection(64, (0.5,) * 3, (0.25,) * 3).to_dict()  # a datamodule's
    trainer.save_checkpoint(tmp_path / "detr.ckpt")
    rgb = (np.random.default_rng(0).random((48, 80, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray((np.arange(60 * 40).reshape(60, 40) * 20).astype(np.uint16)).save(tmp_path / "b.png")  # 16-bit
    out = tmp_path / "out"
    args = ["detect", "--ckpt", str(tmp_path / "detr.ckpt"), str(tmp_path / "a.png"), str(tmp_path / "b.png"),
            "--out", str(out), "--threshold", "0.0", "--device", "cpu", "--attention", "2"]
    assert main(args) == 0
    assert Image.open(out / "a.png").size == (80, 48) and Image.open(out / "b.png").size == (40, 60)
    assert (out / "a_attention.png").is_file() and (out / "b_attention.png").is_file()
    results = json.loads((out / "detections.json").read_text())
    images = {i["id"]: i for i in json.loads((out / "images.json").read_text())}
    assert len(results) == 2 * 8  # threshold 0: every query of both images
    for r in results:
        x, y, w, h = r["bbox"]
        size = images[r["image_id"]]
        assert r["category_id"] in CATEGORY_IDS and 0 <= r["score"] <= 1
        assert x >= -1e-3 and x + w <= size["width"] + 1e-3 and y >= -1e-3 and y + h <= size["height"] + 1e-3
    assert main(["detect", "--ckpt", str(tmp_path / "detr.ckpt"), str(tmp_path / "nope.png"), "--out", str(out)]) == 2
