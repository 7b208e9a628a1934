"""GenerationTask (bits/dim, sample grids, checkpoints) and the `vitkit sample` command."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from lightning import Trainer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image

from vitkit import create_model
from vitkit.cli import main
from vitkit.data import VisionDataModule
from vitkit.errors import ConfigError
from vitkit.tasks import GenerationTask
from vitkit.tasks.generation import bits_per_dim
from vitkit.tasks.shell import TASK_KEY, load_task

TINY = {"img_size": 8, "in_chans": 1}  # the test preset on 8×8 grey digits: 64 positions


def test_bits_per_dim_by_hand():
    logits = torch.zeros(2, 256, 1, 1, 2)  # two images of 1×2 grey pixels
    images = torch.tensor([[[[3, 200]]], [[[0, 0]]]], dtype=torch.uint8)
    logits[0, 3, 0, 0, 0] = 2.0  # p = e² / (e² + 255) for the first sub-pixel of image 0
    logits[1, 7, 0, 0, 1] = 1.0  # image 1, second sub-pixel: the target (0) has p = 1 / (e + 255)
    p0 = math.exp(2) / (math.exp(2) + 255)
    p1 = 1 / (math.e + 255)
    expected = [(-math.log2(p0) + 8) / 2, (8 - math.log2(p1)) / 2]  # 8 bits for each uniform sub-pixel
    assert bits_per_dim(logits, images).tolist() == pytest.approx(expected, abs=1e-5)


def test_untrained_model_scores_about_8_bits():
    model = create_model("image_transformer_test", **TINY).eval()
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    assert bits_per_dim(model(images), images).mean().item() == pytest.approx(8.0, abs=0.1)


def test_model_must_be_an_image_transformer_and_sized_from_data():
    task = GenerationTask("image_transformer_test", in_chans=1, img_size=8, num_classes=10, conditional=True)
    assert (task.model.config.in_chans, task.model.config.img_size, task.model.config.num_classes) == (1, 8, 10)
    assert GenerationTask("image_transformer_test", num_classes=10).model.config.num_classes == 0
    with pytest.raises(ConfigError, match="needs an ImageTransformer, got VisionTransformer"):
        GenerationTask(create_model("vit_test"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short conditional fit + test on digits: (task, datamodule, log_dir, last checkpoint, logged metrics)."""
    root = tmp_path_factory.mktemp("gen")
    dm = VisionDataModule("digits", task="generation", batch_size=16, num_workers=0)
    task = GenerationTask("image_transformer_test", num_classes=dm.num_classes, class_names=dm.class_names,
                          in_chans=dm.in_chans, img_size=dm.image_size, conditional=True, num_samples=10)
    loggers = [CSVLogger(root, name="run", version=0), TensorBoardLogger(root, name="run", version=0)]
    trainer = Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=2, limit_test_batches=2,
                      default_root_dir=root, accelerator="cpu", enable_progress_bar=False, logger=loggers)
    trainer.fit(task, datamodule=dm)
    metrics = dict(trainer.callback_metrics)
    trainer.test(task, datamodule=dm, verbose=False)
    metrics.update(trainer.callback_metrics)
    log_dir = root / "run" / "version_0"
    return task, dm, log_dir, log_dir / "checkpoints" / "last.ckpt", metrics


def test_fit_logs_bits_per_dim_and_sample_grids(trained):
    task, _, log_dir, last, metrics = trained
    assert {"train/bpd_epoch", "val/bpd", "test/bpd"} <= set(metrics)
    assert 0 < metrics["val/bpd"] < 8.5
    (path,) = (log_dir / "samples").glob("epoch000-step000003.png")  # after the 3 training steps
    grid = Image.open(path)
    assert grid.mode == "L" and grid.size == (10 * 65 + 1, 65 + 1)  # one column per class, 8×8 enlarged 8×
    assert list(log_dir.glob("events.out.tfevents.*"))
    assert last.is_file() and list(last.parent.glob("best-epoch000-bpd*.ckpt"))


def test_checkpoint_rebuilds_the_task(trained):
    task, dm, _, last, _ = trained
    rebuilt = load_task(last, expected=GenerationTask)
    assert rebuilt.class_names == dm.class_names and rebuilt.conditional
    x, y = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8), torch.tensor([1, 7])
    assert torch.equal(rebuilt(x, y), task.eval()(x, y))


def test_sample_command_writes_the_requested_grid(trained, tmp_path, capsys):
    _, _, _, last, _ = trained
    out = tmp_path / "grid.png"
    assert main(["sample", "--ckpt", str(last), "--num", "6", "--out", str(out), "--class", "3"]) == 0
    assert Image.open(out).size == (3 * 65 + 1, 2 * 65 + 1)  # 6 images, 3 per row
    given = np.zeros((8, 8), dtype=np.uint8)
    given[:3] = 255
    Image.fromarray(given).save(tmp_path / "top.png")
    out2 = tmp_path / "completed.png"
    assert main(["sample", "--ckpt", str(last), "--num", "2", "--out", str(out2), "--class", "0",
                 "--complete", str(tmp_path / "top.png"), "--rows", "3", "--temperature", "0.8"]) == 0
    completed = np.asarray(Image.open(out2))
    assert (completed[1: 1 + 24, 1: 1 + 64] == 255).all()  # the kept rows (3 rows × 8 px scale) are given
    assert "samples written to" in capsys.readouterr().out
    out3 = tmp_path / "every_class.png"  # no --class on a conditional model: one column per class
    assert main(["sample", "--ckpt", str(last), "--num", "20", "--out", str(out3)]) == 0
    assert Image.open(out3).size == (10 * 65 + 1, 2 * 65 + 1)


def _fails(args, capsys, *needles):
    assert main(["sample", *args]) == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, err


def test_sample_command_errors(trained, tmp_path, capsys):
    _, _, _, last, _ = trained
    ckpt = str(last)
    other = tmp_path / "classifier.ckpt"
    torch.save({TASK_KEY: "vitkit.tasks.classification:ClassificationTask", "state_dict": {}}, other)
    _fails(["--ckpt", str(other)], capsys, "ClassificationTask", "GenerationTask")
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    _fails(["--ckpt", ckpt, "--class", "1", "--complete", str(tmp_path / "rgb.png")], capsys,
           "16×16 pixels with 3 channel(s)", "8×8 images with 1 channel(s)")
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "ok.png")
    _fails(["--ckpt", ckpt, "--class", "1", "--complete", str(tmp_path / "ok.png"), "--rows", "9"], capsys,
           "--rows 9", "8 rows")
    _fails(["--ckpt", ckpt, "--class", "1", "--temperature", "0"], capsys, "--temperature must be > 0")
    _fails(["--ckpt", ckpt, "--class", "12"], capsys, "class label 12 outside [0, 10)")
    _fails(["--ckpt", ckpt, "--class", "eleven"], capsys, "neither a class index nor one of the classes")
    _fails(["--ckpt", str(tmp_path / "missing.ckpt")], capsys, "does not exist")
