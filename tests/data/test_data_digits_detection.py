"""The embedded digits_detection set: deterministic, valid for check-data, boxes tight on the ink and apart, read
through the COCO path."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from vitkit.cli import main
from vitkit.data import DataError, VisionDataModule
from vitkit.data.digits_detection import LAYOUT, MEAN, SETTINGS, STD, ensure_generated, write_digits_detection


def _digest(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_generation_is_deterministic(tmp_path):
    counts = {"train": 8, "val": 3}
    write_digits_detection(tmp_path / "a", counts)
    write_digits_detection(tmp_path / "b", counts)
    first = _digest(tmp_path / "a")
    assert len(first) == 8 + 3 + 3 and first == _digest(tmp_path / "b")
    with pytest.raises(DataError, match="does not hold this version of the digits_detection set"):
        ensure_generated(tmp_path / "a")  # a set of other counts is not taken for the standard one


def test_standard_set_is_valid_for_check_data(digits_detection_root, capsys):
    assert main(["check-data", "--dataset", "digits_detection", "--root", str(digits_detection_root)]) == 0
    out = capsys.readouterr().out
    assert "2000 images" in out and "200 images" in out and "OK: 0 error(s), 0 warning(s)" in out
    mtime = (digits_detection_root / LAYOUT["train_ann"]).stat().st_mtime_ns
    assert ensure_generated(digits_detection_root) == digits_detection_root  # reused, not rewritten
    assert (digits_detection_root / LAYOUT["train_ann"]).stat().st_mtime_ns == mtime


def test_boxes_are_tight_on_the_ink_and_apart(digits_detection_root):
    data = json.loads((digits_detection_root / LAYOUT["val_ann"]).read_text())
    boxes: dict[int, list] = {}
    for ann in data["annotations"]:
        boxes.setdefault(ann["image_id"], []).append(ann["bbox"])
    assert {c["id"]: c["name"] for c in data["categories"]} == {d + 1: str(d) for d in range(10)}
    for img in data["images"][:40]:
        ink = np.asarray(Image.open(digits_detection_root / "val" / img["file_name"])) > SETTINGS["ink"]
        covered = np.zeros_like(ink)
        for x, y, w, h in boxes.get(img["id"], []):
            region = ink[y:y + h, x:x + w]
            assert region[0].any() and region[-1].any() and region[:, 0].any() and region[:, -1].any()
            assert not covered[y:y + h, x:x + w].any()  # no two boxes overlap
            covered[y:y + h, x:x + w] = True
        assert not (ink & ~covered).any()  # no ink outside the boxes


def test_read_through_the_coco_path(digits_detection_root):
    dm = VisionDataModule("digits_detection", root=str(digits_detection_root), task="detection", batch_size=8)
    assert (dm.num_classes, dm.class_names[:3], dm.category_ids[:3]) == (10, ["0", "1", "2"], [1, 2, 3])
    assert (dm.image_size, dm.in_chans, dm.augment) == (96, 3, "detr_noflip")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[:2] == (8, 3) and max(batch["image"].shape[-2:]) <= 96
    assert all(t["labels"].max() < 10 for t in batch["targets"] if len(t["labels"]))
    assert dm.coco_ground_truth("val").getCatIds() == list(range(1, 11))


def test_normalisation_statistics(digits_detection_root):
    pixels = np.stack([np.asarray(Image.open(p)) for p in sorted((digits_detection_root / "train").glob("*.png"))])
    pixels = pixels.astype(np.float64) / 255
    assert pixels.mean() == pytest.approx(MEAN[0], abs=5e-4) and pixels.std() == pytest.approx(STD[0], abs=5e-4)


def test_targets_map_back_onto_the_annotation_file(digits_detection_root):
    """Targets of resized images, scaled by orig_size and mapped through category_ids, are the file's boxes: COCO
    evaluation of them as detections against the file gives AP 1 (what DetectionTask's evaluation relies on)."""
    import contextlib
    import io

    from pycocotools.cocoeval import COCOeval

    dm = VisionDataModule("digits_detection", root=str(digits_detection_root), task="detection", image_size=61,
                          eval_batch_size=50)
    results = []
    for batch in dm.val_dataloader():
        for t in batch["targets"]:
            assert t["size"].tolist() == [61, 61]  # resized from 96
            h, w = t["orig_size"].tolist()
            for (cx, cy, bw, bh), label in zip(t["boxes"].tolist(), t["labels"].tolist(), strict=True):
                box = [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]
                results.append({"image_id": t["image_id"], "category_id": dm.category_ids[label], "bbox": box,
                                "score": 1.0})
    gt = dm.coco_ground_truth("val")
    assert len(results) == len(gt.getAnnIds())
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # AP over IoU 0.50:0.95
