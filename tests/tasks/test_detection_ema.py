"""The weights EMA shared by every task (vitkit.tasks.ema, TaskShell), on the detection task: the update formula,
the EMA's COCO evaluation beside the raw model, its checkpoint round trip and `--ema` inference."""

import math

import pytest
import torch
from lightning import Trainer
from safetensors.torch import load_file
from torch import nn

from tests.tasks.test_detection_task import loader
from tests.tasks.test_rtdetr_task import make_task
from vitkit.cli import main
from vitkit.errors import CheckpointError, ConfigError
from vitkit.tasks import DetectionTask
from vitkit.tasks.ema import build_ema
from vitkit.tasks.shell import load_task


@pytest.mark.parametrize("warmup", [True, 20])
def test_ema_update_equals_the_explicit_formula(warmup):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    ema = build_ema(model, 0.99, warmup=warmup)
    kept = {k: v.clone() for k, v in ema.module.state_dict().items()}
    for step in (1, 2, 7):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model[1].num_batches_tracked += 3
            model[1].running_mean.add_(1.0)
        ema.update(model, step=step)
        if warmup is True:  # timm's ramp: the first step copies
            d = min(0.99, 1 - (1 + (step - 1)) ** (-2 / 3)) if step > 1 else 0.0
        else:  # RT-DETR's: decay · (1 − exp(−step / N))
            d = 0.99 * (1 - math.exp(-step / warmup))
        for name, value in model.state_dict().items():
            expected = value if not value.is_floating_point() else d * kept[name] + (1 - d) * value
            assert torch.allclose(ema.module.state_dict()[name], expected, atol=1e-6), (step, name)
            kept[name] = expected.clone()
    for bad in (0.0, 1.0):
        with pytest.raises(ConfigError, match=f"ema_decay={bad}"):
            build_ema(model, bad)
    with pytest.raises(ConfigError, match="ema_warmup=-5"):
        build_ema(model, 0.9, warmup=-5)


def test_detection_validates_the_ema_and_the_checkpoint_keeps_it(tmp_path):
    task = make_task(ema_decay=0.9, ema_warmup=2)
    assert "ema" not in dict(task.named_children())  # out of state_dict: checkpoints keep plain weights
    trainer = Trainer(max_epochs=1, default_root_dir=tmp_path, accelerator="cpu", enable_progress_bar=False,
                      logger=False, num_sanity_val_steps=0)
    trainer.fit(task, train_dataloaders=loader(), val_dataloaders=loader())
    metrics = trainer.callback_metrics
    assert {"val/AP", "val_ema/AP", "val_ema/AP50", "val_ema/loss"} <= set(metrics)
    ema, raw = task.ema.module.state_dict(), task.model.state_dict()
    key = "decoder.class_heads.0.weight"
    assert not torch.equal(ema[key], raw[key])
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    rebuilt = load_task(ckpt, expected=DetectionTask)
    assert torch.equal(rebuilt.ema.module.state_dict()[key], ema[key])  # the round trip keeps the EMA
    assert torch.equal(rebuilt.model.state_dict()[key], raw[key])  # the raw weights by default
    with_ema = load_task(ckpt, expected=DetectionTask, ema=True)  # --ema of predict / detect / export
    assert all(torch.equal(with_ema.model.state_dict()[k], v) for k, v in ema.items())
    out = tmp_path / "ema.safetensors"
    assert main(["export", "--ckpt", str(ckpt), "--out", str(out), "--ema"]) == 0
    assert torch.equal(load_file(str(out))[key], ema[key])

    plain = make_task()
    trainer = Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, default_root_dir=tmp_path / "plain",
                      accelerator="cpu", enable_progress_bar=False, logger=False)
    trainer.fit(plain, train_dataloaders=loader())
    with pytest.raises(CheckpointError, match="holds no EMA weights"):
        load_task(tmp_path / "plain" / "checkpoints" / "last.ckpt", ema=True)
    assert main(["export", "--ckpt", str(tmp_path / "plain" / "checkpoints" / "last.ckpt"), "--out", str(out),
                 "--ema"]) == 2  # one line: the checkpoint has no EMA weights
