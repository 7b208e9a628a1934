"""The training recipe's switches (timm / DeiT): each runs one batch and changes what it should."""

import numpy as np
import pytest
import timm
import torch
from lightning import Callback, Trainer

from vitkit.data import VisionDataModule
from vitkit.data.errors import DataError
from vitkit.layers import DropPath
from vitkit.tasks import ClassificationTask
from vitkit.tasks.layer_decay import layer_decay_scale, layer_ids
from vitkit.tasks.shell import load_task

BATCH = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 2, 3])}


def _task(**kw):
    torch.manual_seed(0)
    task = ClassificationTask("vit_test", num_classes=4, **kw)
    task.log = lambda *a, **k: None  # outside a Trainer
    return task


def _seen_by_model(task, batch):
    seen = []
    task.model.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    loss = task.training_step(batch, 0)
    return seen[0], loss


def test_mixup_mixes_images_and_targets():
    task = _task(mixup_alpha=0.8)
    task.mixup = recorder = _Recorder(task.mixup)
    seen, loss = _seen_by_model(task, {"image": BATCH["image"].clone(), "label": BATCH["label"]})  # mixes in place
    targets = recorder.targets
    lam = targets[0][0, 0].item()  # mixup's soft target: lam for the own class, 1 - lam for the partner's
    x = BATCH["image"]
    assert torch.allclose(seen, lam * x + (1 - lam) * x.flip(0), atol=1e-5)
    assert torch.allclose(targets[0].sum(-1), torch.ones(4)) and (targets[0] > 0).sum(-1).eq(2).all()
    plain = _task()
    assert not torch.allclose(loss, plain.training_step(BATCH, 0))


class _Recorder:
    """Stands in for the task's Mixup and keeps the soft targets it made."""

    def __init__(self, mix):
        self.mix, self.mixup_enabled, self.targets = mix, True, []

    def __call__(self, x, y):
        x, t = self.mix(x, y)
        self.targets.append(t)
        return x, t


def test_cutmix_pastes_a_box_from_the_partner_image():
    task = _task(cutmix_alpha=1.0)
    x = BATCH["image"].clone()
    seen, _ = _seen_by_model(task, {"image": x.clone(), "label": BATCH["label"]})
    own, partner = (seen == x).all(1), (seen == x.flip(0)).all(1)  # (B, H, W) per pixel
    assert (own | partner).all() and partner.any() and own.any()


def test_mixup_off_epoch_and_odd_batches(tmp_path):
    task = ClassificationTask("vit_test", num_classes=4, mixup_alpha=0.8, mixup_off_epoch=1, warmup_epochs=0)
    seen = []

    class Watch(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen.append(module.mixup.mixup_enabled)

    dm = VisionDataModule(dataset="fake", batch_size=4, fake_samples=16, fake_classes=4)
    Trainer(max_epochs=2, limit_train_batches=1, limit_val_batches=1, default_root_dir=tmp_path, logger=False,
            enable_progress_bar=False, enable_checkpointing=False, callbacks=[Watch()]).fit(task, datamodule=dm)
    assert seen == [True, False]
    odd = _task(cutmix_alpha=1.0)
    with pytest.raises(ValueError, match="batch size must be even, got 3"):
        odd.training_step({"image": torch.randn(3, 3, 32, 32), "label": torch.tensor([0, 1, 2])}, 0)


def test_ema_is_validated_beside_the_model_and_saved(tmp_path):
    task = ClassificationTask("vit_test", num_classes=4, ema_decay=0.9, warmup_epochs=0)
    assert "ema" not in dict(task.named_children())  # not in state_dict: Lightning checkpoints stay plain weights
    dm = VisionDataModule(dataset="fake", batch_size=8, fake_samples=32, fake_classes=4)
    trainer = Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=1, default_root_dir=tmp_path,
                      logger=False, enable_progress_bar=False)
    trainer.fit(task, datamodule=dm)
    assert {"val/acc1", "val_ema/acc1", "val_ema/loss"} <= set(trainer.callback_metrics)
    ema, raw = task.ema.module.state_dict(), task.model.state_dict()
    assert not torch.equal(ema["head.weight"], raw["head.weight"])
    rebuilt = load_task(tmp_path / "checkpoints" / "last.ckpt", expected=ClassificationTask)
    assert torch.equal(rebuilt.ema.module.state_dict()["head.weight"], ema["head.weight"])
    with pytest.raises(ValueError, match="ema_decay=1.5"):
        ClassificationTask("vit_test", num_classes=4, ema_decay=1.5)


def test_layer_decay_ids_and_rates(tmp_path):
    from vitkit import create_model

    # depth 2, timm's convention: embedding 0, blocks 1-2 (the final norm with the last), head 3
    vit_ids = layer_ids(create_model("vit_test"))
    assert vit_ids["pos_embed"] == vit_ids["patch_embed.proj.weight"] == 0
    assert vit_ids["blocks.1.attn.qkv.weight"] == vit_ids["norm.bias"] == 2 and vit_ids["head.weight"] == 3
    timm_vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2)
    assert layer_ids(timm_vit) == vit_ids  # the same groups as timm's own ViT
    cvt_ids = layer_ids(create_model("cvt_test"))  # depths (1, 2)
    assert cvt_ids["stages.0.patch_embed.proj.weight"] == 0 and cvt_ids["stages.0.blocks.0.norm1.weight"] == 1
    assert cvt_ids["stages.1.patch_embed.norm.bias"] == cvt_ids["stages.1.cls_token"] == 2
    assert cvt_ids["stages.1.blocks.1.mlp.fc2.weight"] == 3 and cvt_ids["head.bias"] == 4
    timm_ids = layer_ids(ClassificationTask("resnet18", num_classes=3).model)
    assert timm_ids["conv1.weight"] == 0 and timm_ids["fc.weight"] == max(timm_ids.values())
    scale = layer_decay_scale(create_model("cvt_test"), 0.5)
    assert scale("head.weight") == 1.0 and scale("stages.0.patch_embed.proj.weight") == 0.5**4

    task = ClassificationTask("cvt_test", num_classes=4, layer_decay=0.5, lr=1e-3, warmup_epochs=0)
    dm = VisionDataModule(dataset="fake", batch_size=4, fake_samples=16, fake_classes=4)
    trainer = Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, default_root_dir=tmp_path,
                      logger=False, enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(task, datamodule=dm)
    groups = trainer.optimizers[0].param_groups
    top = max(g["lr"] for g in groups)
    assert sorted({round(g["lr"] / top, 6) for g in groups}) == [0.0625, 0.125, 0.25, 0.5, 1.0]
    with pytest.raises(ValueError, match="layer-wise lr decay needs"):
        layer_ids(torch.nn.Linear(2, 2))


def test_drop_path_override():
    task = ClassificationTask("cvt_test", num_classes=4, drop_path_rate=0.3)
    rates = [m.drop_prob for m in task.model.modules() if isinstance(m, DropPath)]
    assert rates and max(rates) == pytest.approx(0.3)
    assert not [m for m in ClassificationTask("cvt_test", num_classes=4).model.modules() if isinstance(m, DropPath)]
    with pytest.raises(ValueError, match="ready nn.Module"):
        ClassificationTask(torch.nn.Linear(2, 2), num_classes=2, drop_path_rate=0.1)


def _train_images(**kw):
    dm = VisionDataModule(dataset="fake", batch_size=4, fake_samples=16, fake_classes=4, augment="none", **kw)
    train, val = dm.dataset("train"), dm.dataset("val")
    return torch.stack([train[i]["image"] for i in range(4)]), val[0]["image"]


def test_rand_augment_changes_training_images_only():
    np.random.seed(0)
    plain, plain_val = _train_images()
    augmented, val = _train_images(rand_augment="rand-m9-mstd0.5-inc1")
    assert augmented.shape == plain.shape and not torch.equal(augmented, plain)
    assert torch.equal(val, plain_val)
    grey, _ = _train_images(rand_augment="rand-m9-mstd0.5-inc1", fake_channels=1)
    assert grey.shape == (4, 1, 32, 32)
    with pytest.raises(DataError, match="not a timm RandAugment string"):
        VisionDataModule(dataset="fake", rand_augment="randaugment-strong")


def test_random_erasing_erases_one_rectangle():
    plain, _ = _train_images()
    erased, _ = _train_images(random_erasing=1.0)
    for a, b in zip(plain, erased, strict=True):
        changed = (a != b).any(0)  # (H, W)
        rows, cols = changed.any(1).nonzero()[:, 0], changed.any(0).nonzero()[:, 0]
        assert changed.any()
        box = changed[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
        assert box.float().mean() > 0.9 and changed.sum() == box.sum()  # all changes inside one box
    with pytest.raises(DataError, match="random_erasing=1.5 is a probability"):
        VisionDataModule(dataset="fake", random_erasing=1.5)
