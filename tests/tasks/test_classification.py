import math

import pytest
import timm
import torch
from lightning import Trainer

from vitkit import create_model
from vitkit.data import VisionDataModule
from vitkit.tasks import ClassificationTask
from vitkit.tasks.optim import param_groups, warmup_cosine
from vitkit.tasks.shell import load_task
from vitkit.weights import CheckpointError


def _fake(**kw):
    return VisionDataModule(dataset="fake", batch_size=8, fake_samples=32, fake_classes=4, **kw)


def test_no_weight_decay_on_biases_norms_positions_and_tokens():
    model = create_model("vit_test")
    groups = param_groups(model, weight_decay=0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {names[id(p)] for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    decay = {names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert {"pos_embed", "cls_token", "head.bias", "norm.weight", "blocks.0.norm1.bias"} <= no_decay
    assert decay == {n for n, p in model.named_parameters() if p.ndim > 1 and n not in ("pos_embed", "cls_token")}


def test_warmup_then_cosine():
    f = warmup_cosine(4, 14, min_ratio=0.1)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(9) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(14) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)


def test_fit_logs_metrics_and_checkpoint_rebuilds_the_task(tmp_path):
    dm = _fake()
    task = ClassificationTask("vit_test", num_classes=dm.num_classes, class_names=dm.class_names,
                              in_chans=dm.in_chans, img_size=dm.image_size, warmup_epochs=1)
    trainer = Trainer(max_epochs=2, default_root_dir=tmp_path, accelerator="cpu", enable_progress_bar=False,
                      logger=False)
    trainer.fit(task, datamodule=dm)
    metrics = trainer.callback_metrics
    assert {"train/loss", "val/loss", "val/acc1", "val/acc4"} <= set(metrics)
    assert "best-epoch" in trainer.checkpoint_callback.best_model_path
    last = tmp_path / "checkpoints" / "last.ckpt"
    rebuilt = load_task(last, expected=ClassificationTask)  # the final weights, rebuilt from hyper-parameters
    assert rebuilt.class_names == dm.class_names
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(rebuilt(x), task.eval()(x))
    # the Lightning checkpoint also loads as plain weights
    model = create_model("vit_test", num_classes=4, checkpoint=last).eval()
    assert torch.equal(model(x), rebuilt(x))


def test_label_smoothing_changes_the_training_loss_only():
    task = ClassificationTask("vit_test", num_classes=4, label_smoothing=0.3)
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 2, 3])}
    logits = task(batch["image"])
    smoothed = torch.nn.functional.cross_entropy(logits, batch["label"], label_smoothing=0.3)
    logged = {}
    task.log = lambda key, value, **k: logged.setdefault(key, value)  # outside a Trainer
    assert torch.allclose(task.training_step(batch, 0), smoothed)
    task.validation_step(batch, 0)
    assert torch.allclose(logged["val/loss"], torch.nn.functional.cross_entropy(logits, batch["label"]))


def test_any_timm_classifier_and_injected_modules():
    task = ClassificationTask("resnet18", num_classes=3, in_chans=1, img_size=16)
    assert task(torch.randn(2, 1, 16, 16)).shape == (2, 3)
    injected = ClassificationTask(timm.create_model("vit_tiny_patch16_224", img_size=32, num_classes=5))
    assert injected.num_classes == 5


def test_timm_checkpoint_for_a_timm_model_reinitialises_its_classifier(tmp_path):
    torch.save(timm.create_model("resnet18", num_classes=10).state_dict(), tmp_path / "r18.pth")
    task = ClassificationTask("resnet18", num_classes=3, checkpoint=str(tmp_path / "r18.pth"))
    assert sorted(task.load_report.reinitialized) == ["fc.bias", "fc.weight"]


def test_bad_model_names_and_checkpoints(tmp_path):
    with pytest.raises(KeyError, match="neither a vitkit preset nor a timm model"):
        ClassificationTask("vit_tinyy_patch16_224", num_classes=3)
    (tmp_path / "x.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="x.ckpt"):
        load_task(tmp_path / "x.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "y.ckpt")
    with pytest.raises(CheckpointError, match="not a vitkit training checkpoint"):
        load_task(tmp_path / "y.ckpt")


@pytest.mark.parametrize("precision", ["32-true", "64-true"])
def test_under_a_trainer_batches_cross_as_pixels_and_are_normalised_on_the_device(tmp_path, precision):
    """normalise="auto": a Trainer gets 8-bit batches from the loaders (a quarter of the bytes through shared and
    pinned memory and the host-to-device copy) and the task sees them normalised exactly as the workers would, in
    the precision's input type (which Lightning gives the inputs before the transfer)."""
    from lightning.pytorch.callbacks import Callback

    class Seen(Callback):
        batches: list = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.batches.append(batch["image"])

    dm = _fake()
    expected = next(iter(dm.train_dataloader()))["image"]  # iterated by hand: normalised in the workers
    task = ClassificationTask("vit_test", num_classes=dm.num_classes, in_chans=dm.in_chans, img_size=dm.image_size)
    trainer = Trainer(max_steps=1, default_root_dir=tmp_path, accelerator="cpu", enable_progress_bar=False,
                      logger=False, limit_val_batches=0, callbacks=[Seen()], enable_checkpointing=False,
                      precision=precision)
    Seen.batches = []
    trainer.fit(task, datamodule=dm)
    assert next(iter(dm.train_dataloader()))["image"].dtype == torch.uint8  # the Trainer's loaders
    dtype = torch.float64 if precision == "64-true" else torch.float32
    assert Seen.batches[0].dtype == dtype and torch.equal(Seen.batches[0], expected.to(dtype))
