"""Checkpoints of untrained tiny tasks, written as ``vitkit fit`` writes them (task class, class names,
preprocessing), without a training run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vitkit.data.preprocessing import Preprocessing


def write_checkpoint(task, path: Path, preprocessing: Preprocessing) -> Path:
    """What ``load_task`` reads of a Lightning checkpoint: hyper-parameters, weights and the task's own state."""
    task.preprocessing = preprocessing.to_dict()
    checkpoint = {"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict()}
    task.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="session")
def classifier_ckpt(tmp_path_factory) -> Path:
    from vitkit.tasks import ClassificationTask

    torch.manual_seed(0)
    task = ClassificationTask("vit_test", num_classes=4, class_names=["ant", "bee", "cat", "dog"], img_size=32)
    prep = Preprocessing("classification", 32, "resize", 3, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    return write_checkpoint(task, tmp_path_factory.mktemp("cls") / "cls.ckpt", prep)


@pytest.fixture(scope="session")
def detector_ckpt(tmp_path_factory) -> Path:
    from vitkit.tasks import DetectionTask

    torch.manual_seed(0)
    task = DetectionTask("detr_test", num_classes=3, class_names=["a", "b", "c"], category_ids=[3, 7, 11], img_size=48)
    prep = Preprocessing.for_detection(48, (0.5,) * 3, (0.25,) * 3)
    return write_checkpoint(task, tmp_path_factory.mktemp("det") / "det.ckpt", prep)
