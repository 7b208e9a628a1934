"""COCO-format detection data: the batch contract of DetectionTask, label mapping, crowd/degenerate/empty handling,
image modes, ground truth for evaluation, and refusing broken annotation files before training."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from conftest import write_coco
from PIL import Image

from vitkit.data import DataError, VisionDataModule

CATEGORIES = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]  # out of order and not 0..K-1 on purpose


def _palette_image(width: int, height: int) -> Image.Image:
    img = Image.new("P", (width, height), 1)
    img.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    return img


def _dataset(root):
    """Five images of five modes and sizes; crowd, degenerate, clipped and missing boxes; one image without any."""
    images = [{"id": 11, "file_name": "a.png", "width": 40, "height": 30},
              {"id": 12, "file_name": "b.png", "width": 20, "height": 50},
              {"id": 13, "file_name": "c.png", "width": 32, "height": 32},
              {"id": 14, "file_name": "d.png", "width": 24, "height": 30},
              {"id": 15, "file_name": "e.png", "width": 30, "height": 36}]
    boxes = [(11, 3, [4, 6, 10, 8], 0), (11, 7, [30, 20, 20, 20], 0), (11, 7, [0, 0, 5, 5], 1),
             (12, 3, [2, 3, 0, 10], 0), (12, 3, [-10, -10, 5, 5], 0), (12, 7, [5, 10, 10, 20], 0),
             (14, 3, [1, 1, 4, 4], 0), (15, 7, [0, 0, 30, 36], 0)]
    annotations = [{"id": i + 1, "image_id": img, "category_id": cat, "bbox": box, "area": box[2] * box[3],
                    "iscrowd": crowd} for i, (img, cat, box, crowd) in enumerate(boxes)]
    pixels = {"b.png": Image.new("L", (20, 50), 100),
              "c.png": Image.new("RGBA", (32, 32), (0, 0, 0, 0)),  # transparent: composited over white
              "d.png": Image.fromarray(np.full((30, 24), 65535, dtype=np.uint16)),  # 16-bit white
              "e.png": _palette_image(30, 36)}
    write_coco(root, images, annotations, CATEGORIES, pixels=pixels)
    return root


def _module(root, **kwargs) -> VisionDataModule:
    kwargs = {"task": "detection", "augment": "none", "image_size": 30, "eval_batch_size": 5,
              "val_ann": "annotations/instances_train2017.json", "val_images": "train2017", **kwargs}
    return VisionDataModule("coco", root=str(root), **kwargs)


def _cxcywh(box, w, h):
    x, y, bw, bh = box
    return [(x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h]


def test_batches_follow_the_detection_contract(tmp_path):
    dm = _module(_dataset(tmp_path))
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (5, 3, 50, 40) and batch["image"].dtype == torch.float32
    assert batch["pixel_mask"].shape == (5, 50, 40) and batch["pixel_mask"].dtype == torch.bool
    sizes = [(30, 40), (50, 20), (30, 30), (38, 30), (36, 30)]  # after the shorter-side-30 resize (longer ≤ 50)
    for i, (h, w) in enumerate(sizes):
        expected = torch.zeros(50, 40, dtype=torch.bool)
        expected[:h, :w] = True
        assert torch.equal(batch["pixel_mask"][i], expected), i
        assert batch["image"][i][:, ~expected].abs().max() == 0  # padding is 0 (the mean colour)
        assert tuple(batch["targets"][i]["size"].tolist()) == (h, w)
    targets = batch["targets"]
    assert [t["image_id"] for t in targets] == [11, 12, 13, 14, 15]
    assert [tuple(t["orig_size"].tolist()) for t in targets] == [(30, 40), (50, 20), (32, 32), (30, 24), (36, 30)]
    # boxes: normalised cxcywh relative to the image before padding; crowd and degenerate gone, one clipped
    expected_boxes = [[_cxcywh([4, 6, 10, 8], 40, 30), _cxcywh([30, 20, 10, 10], 40, 30)],
                      [_cxcywh([5, 10, 10, 20], 20, 50)], [], [_cxcywh([1, 1, 4, 4], 24, 30)], [[0.5, 0.5, 1.0, 1.0]]]
    expected_labels = [[0, 1], [1], [], [0], [1]]  # cat (id 3) → 0, dog (id 7) → 1
    for t, boxes, labels in zip(targets, expected_boxes, expected_labels, strict=True):
        assert t["boxes"].dtype == torch.float32 and t["boxes"].shape == (len(boxes), 4)
        assert t["labels"].dtype == torch.long and t["labels"].tolist() == labels
        torch.testing.assert_close(t["boxes"], torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))


def test_every_image_mode_is_read_as_rgb(tmp_path):
    dm = _module(_dataset(tmp_path))
    image = next(iter(dm.val_dataloader()))["image"]
    mean, std = torch.tensor(dm.mean).view(3, 1), torch.tensor(dm.std).view(3, 1)
    pixel = [image[i, :, 2, 2:3] * std + mean for i in range(5)]  # back to [0, 1]
    expected = [(0, 0, 0), (100, 100, 100), (255, 255, 255), (255, 255, 255), (10, 200, 30)]
    for value, rgb in zip(pixel, expected, strict=True):
        torch.testing.assert_close(value.flatten() * 255, torch.tensor(rgb, dtype=torch.float32), atol=0.01, rtol=0)


def test_label_mapping_round_trip_and_checkpoint_state(tmp_path):
    root = _dataset(tmp_path / "data")
    dm = _module(root)
    assert dm.category_ids == [3, 7] and dm.class_names == ["cat", "dog"] and dm.num_classes == 2
    raw = json.loads((root / "annotations/instances_train2017.json").read_text())
    kept = {(a["image_id"], a["category_id"]) for a in raw["annotations"] if a["id"] in (1, 2, 6, 7, 8)}
    batch = next(iter(dm.val_dataloader()))
    mapped = {(t["image_id"], dm.category_ids[label]) for t in batch["targets"] for label in t["labels"].tolist()}
    assert mapped == kept
    state = dm.state_dict()
    assert state["category_ids"] == [3, 7] and state["class_names"] == ["cat", "dog"]
    _module(root).load_state_dict(state)  # same data: accepted
    other = tmp_path / "other"
    write_coco(other, [{"id": 1, "file_name": "x.png", "width": 8, "height": 8}], [],
               [{"id": 4, "name": "cat"}, {"id": 7, "name": "dog"}])
    with pytest.raises(DataError, match=r"category ids \[3, 7\] but the annotation file of 'coco' gives them \[4, 7\]"):
        _module(other).load_state_dict(state)
    state["class_names"] = ["cat", "horse"]
    with pytest.raises(DataError, match=r"only in checkpoint: \['horse'\]"):
        _module(root).load_state_dict(state)


def test_crowd_excluded_degenerate_dropped_and_counted(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="vitkit.data.coco")
    dm = _module(_dataset(tmp_path))
    assert "5 images (1 without objects), 5 boxes; 1 crowd regions excluded from training targets, 2 degenerate " \
           "boxes dropped (no width or height inside the image), 1 boxes clipped to the image" in caplog.text
    assert sum(len(t["boxes"]) for t in next(iter(dm.val_dataloader()))["targets"]) == 5


def test_ground_truth_is_the_annotation_file_with_gaps_filled(tmp_path):
    root = _dataset(tmp_path)
    path = root / "annotations/instances_train2017.json"
    raw = json.loads(path.read_text())
    del raw["info"], raw["annotations"][0]["area"], raw["annotations"][0]["iscrowd"]
    path.write_text(json.dumps(raw))
    gt = _module(root).coco_ground_truth("val")
    assert len(gt.getAnnIds()) == 8 and len(gt.getAnnIds(iscrowd=True)) == 1  # crowd kept for COCOeval to ignore
    first = gt.loadAnns(1)[0]
    assert first["area"] == 80 and first["iscrowd"] == 0 and gt.dataset["info"] == {}


def test_training_splits_and_augmented_batches(tmp_path):
    root = _dataset(tmp_path)
    dm = VisionDataModule("coco", root=str(root), task="detection", image_size=30, batch_size=2, val_split=0.4)
    assert dm.augment == "detr"  # coco's own preset
    assert len(dm.dataset("train")) == 3 and len(dm.dataset("val")) == 2  # no val file: 40% held out
    for batch in dm.train_dataloader():
        for i, t in enumerate(batch["targets"]):
            h, w = t["size"].tolist()
            assert batch["pixel_mask"][i].sum() == h * w and batch["pixel_mask"][i, :h, :w].all()
            assert t["boxes"].numel() == 0 or (t["boxes"].min() >= 0 and t["boxes"].max() <= 1)


def test_training_refuses_files_with_errors_and_accepts_warnings(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "width": 20, "height": 20}]
    write_coco(tmp_path / "bad", images, [{"id": 1, "image_id": 1, "category_id": 9, "bbox": [1, 1, 5, 5]}],
               [{"id": 1, "name": "x"}])
    with pytest.raises(DataError, match=r"(?s)1 error\(s\) that would corrupt training; the first: .*category_id 9 "
                                        r"is not an id.* — add the category.*vitkit check-data --ann"):
        VisionDataModule("coco", root=str(tmp_path / "bad"), task="detection")
    write_coco(tmp_path / "warn", images, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 25, 5]}],
               [{"id": 1, "name": "x"}], info=False)  # box past the edge, no area/iscrowd/info: repaired
    assert VisionDataModule("coco", root=str(tmp_path / "warn"), task="detection").num_classes == 1


@pytest.mark.parametrize("images, message", [
    ([], r'the "images" list is empty: there is nothing to train on'),
    (None, r"annotation file .*instances_train2017.json not found — a COCO-format root holds"),
])
def test_empty_or_missing_datasets(tmp_path, images, message):
    if images is not None:
        write_coco(tmp_path, images, [], CATEGORIES)
    with pytest.raises(DataError, match=message):
        VisionDataModule("coco", root=str(tmp_path), task="detection")


def test_bad_pairings_and_paths(tmp_path):
    with pytest.raises(DataError, match="dataset 'coco' needs --data.root PATH"):
        VisionDataModule("coco", task="detection")
    with pytest.raises(DataError, match=r"dataset 'coco' cannot serve task 'classification': its samples lack"):
        VisionDataModule("coco", root=str(tmp_path))
    with pytest.raises(DataError, match=r"unknown augment preset 'imagenet' — use one of auto, none, detr, "
                                        r"detr_noflip"):
        _module(_dataset(tmp_path), augment="imagenet")
    with pytest.raises(DataError, match=r"validation annotation file .*nope.json \(--data.val_ann\) not found"):
        _module(tmp_path, val_ann="nope.json")


def test_image_size_disagreeing_with_the_file_is_named(tmp_path):
    write_coco(tmp_path, [{"id": 5, "file_name": "a.png", "width": 20, "height": 10}], [], CATEGORIES,
               pixels={"a.png": Image.new("RGB", (10, 20))})
    dm = _module(tmp_path)
    with pytest.raises(DataError, match=r"a.png is 10×20 pixels but .* gives image id 5 width 20 and height 10"):
        dm.dataset("val")[0]


def test_val_file_with_other_categories_is_refused(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}]
    write_coco(tmp_path, images, [], CATEGORIES)
    write_coco(tmp_path, images, [], [{"id": 3, "name": "cat"}], ann="annotations/instances_val2017.json",
               folder="val2017")
    with pytest.raises(DataError, match="have different categories"):
        VisionDataModule("coco", root=str(tmp_path), task="detection")
