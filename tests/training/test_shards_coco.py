"""Detection shards (``vitkit prepare --from COCO_ROOT`` + ``--data.dataset streaming --data.task detection``)
against the COCO path on the digits_detection sets vitkit generates: the same classes and category ids, the same
raw samples and, augmented and formatted, the same images and targets; pre-resized shards with their boxes scaled
to match; the annotation file kept for evaluation; a short training run from shards ending as the same run from
the COCO files; the wrong task, a non-empty target folder refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from forked import ROOT, run_forked, validation_rows

from vitkit.cli import main as vitkit
from vitkit.data import DataError, VisionDataModule
from vitkit.data.digits_detection import LAYOUT
from vitkit.data.sampling import SampleKey


def _prepare(source: Path, out: Path, *extra: str) -> Path:
    assert vitkit(["prepare", "--from", str(source), "--to", str(out), "--workers", "1", *extra]) == 0
    return out


@pytest.fixture(scope="module")
def standard_shards(digits_detection_root, tmp_path_factory) -> Path:
    return _prepare(digits_detection_root, tmp_path_factory.mktemp("dd") / "shards")


def _shards(root: Path, **kwargs) -> VisionDataModule:
    return VisionDataModule("streaming", root=str(root), task="detection", num_workers=0, **kwargs)


def _equal_targets(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in ("boxes", "labels", "orig_size", "size")) and \
        a["image_id"] == b["image_id"]


def test_detection_shards_give_the_coco_paths_samples_and_targets(digits_detection_root, standard_shards):
    coco = VisionDataModule("digits_detection", root=str(digits_detection_root), task="detection", num_workers=0)
    ours = _shards(standard_shards)
    assert (ours.class_names, ours.category_ids) == (coco.class_names, coco.category_ids)
    assert ours.category_ids[0] == 1  # digit 0 is category 1: the mapping survives
    assert (ours.info.mean, ours.info.std, ours.augment, ours.image_size) == \
        (coco.info.mean, coco.info.std, coco.augment, coco.image_size)
    for split in ("train", "val"):
        a, b = coco.dataset(split), ours.dataset(split)
        assert len(a) == len(b) and len(b) > 0
        raw_a, raw_b = a.samples.dataset, b.samples.dataset  # every image's targets, without decoding
        for i in range(len(raw_b)):
            ix = raw_a.index
            s, e = ix.offsets[i], ix.offsets[i + 1]
            t = raw_b.targets(i)
            assert np.array_equal(t["boxes"], ix.boxes[s:e]) and np.array_equal(t["labels"], ix.labels[s:e])
            assert t["image_id"] == ix.image_ids[i] and t["orig_size"] == tuple(ix.sizes[i]), (split, i)
        for i in range(0, len(b), len(b) // 12):  # augmented (train: flip-free DETR crops) and formatted
            x, y = a[SampleKey(i, 1)], b[SampleKey(i, 1)]
            assert torch.equal(x["image"], y["image"]) and _equal_targets(x["target"], y["target"]), (split, i)
    gt = ours.coco_ground_truth("val")
    assert gt.dataset == coco.coco_ground_truth("val").dataset


def test_pre_resized_detection_shards_scale_the_boxes(small_detection_root, tmp_path):
    out = _prepare(small_detection_root, tmp_path / "small", "--max-side", "40")
    coco = VisionDataModule("coco", root=str(small_detection_root), task="detection", num_workers=0, **LAYOUT)
    ours = _shards(out)
    for split in ("train", "val"):
        a, b = coco.dataset(split).samples, ours.dataset(split).samples
        for i in range(len(b)):
            x, y = a[i], b[i]
            assert y["image"].shape == (40, 40, 3) and y["orig_size"] == x["orig_size"] == (96, 96)
            assert np.allclose(y["boxes"] / 40, x["boxes"] / 96, atol=1e-6) and np.array_equal(y["labels"],
                                                                                                x["labels"])
    truth = json.loads((small_detection_root / LAYOUT["val_ann"]).read_text())
    assert ours.coco_ground_truth("val").dataset["annotations"] == truth["annotations"]  # the file's own pixels


def test_a_set_without_validation_file_holds_out_the_same_images(small_detection_root, tmp_path, capsys):
    paths = ["--train-ann", LAYOUT["train_ann"], "--train-images", "train", "--val-ann", "annotations/none.json"]
    assert vitkit(["prepare", "--from", str(small_detection_root), "--to", str(tmp_path / "x"), *paths]) == 2
    assert "none.json (--data.val_ann) not found" in capsys.readouterr().err  # as in training; nothing written
    assert not (tmp_path / "x").exists()
    source = tmp_path / "set"
    (source / "annotations").mkdir(parents=True)
    (source / "annotations/instances_train2017.json").write_bytes((small_detection_root / LAYOUT["train_ann"])
                                                                  .read_bytes())
    (source / "train2017").symlink_to(small_detection_root / "train")
    out = _prepare(source, tmp_path / "shards")  # the COCO layout, no instances_val2017.json
    coco = VisionDataModule("coco", root=str(source), task="detection", num_workers=0, val_split=0.25, seed=3)
    ours = _shards(out, val_split=0.25, seed=3)
    assert ours.augment == coco.augment == "detr" and ours.image_size == coco.image_size == 800
    for split in ("train", "val"):
        assert ours.dataset(split).samples.indices == coco.dataset(split).samples.indices


def test_the_task_must_match_the_shards(small_detection_root, tmp_path, capsys):
    out = _prepare(small_detection_root, tmp_path / "det")
    with pytest.raises(DataError, match="holds detection shards.*--data.task detection"):
        VisionDataModule("streaming", root=str(out))
    assert vitkit(["prepare", "--from", str(small_detection_root), "--to", str(out)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert vitkit(["check-data", "--dataset", "streaming", "--root", str(out)]) == 0
    assert "detection shards, 10 classes; train 48 records, 107 boxes, 48 read and decoded" in capsys.readouterr().out
    assert vitkit(["prepare", "--from", str(small_detection_root), "--to", str(out), "--overwrite"]) == 0


def test_detection_trains_from_shards_as_from_the_coco_files(digits_detection_root, standard_shards, tmp_path):
    common = ["fit", "-c", str(ROOT / "configs/detr/digits.yaml"), "--trainer.max_time", "null",
              "--data.task", "detection", "--data.image_size", "48", "--data.batch_size", "4",
              "--data.num_workers", "0", "--model.init_args.model", "detr_test",
              "--model.init_args.model_kwargs", '{"num_queries": 6}', "--trainer.max_steps", "3",
              "--trainer.limit_val_batches", "2", "--trainer.deterministic", "true",
              "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
              "--trainer.num_sanity_val_steps", "0", "--trainer.val_check_interval", "3",
              f"--trainer.default_root_dir={tmp_path}"]
    assert run_forked([*common, "--data.dataset", "digits_detection", "--data.root", str(digits_detection_root),
                       "--run_name", "coco"]) == 0
    assert run_forked([*common, "--data.dataset", "streaming", "--data.root", str(standard_shards),
                       "--run_name", "shards"]) == 0
    coco, shards = (validation_rows(tmp_path / name / "version_0")[-1] for name in ("coco", "shards"))
    assert shards["val/loss"] == pytest.approx(coco["val/loss"], rel=1e-6) and "val/AP" in shards
