"""VisionDataModule: the batch contract, what exists before setup, loaders, checkpoint state, option errors."""

from __future__ import annotations

import functools

import pytest
import torch

from vitkit.data import DataError, VisionDataModule


@pytest.fixture
def modules(image_folder, fake_cifar):
    """One small datamodule per built-in dataset, loading in the test process."""
    return {name: functools.partial(make, num_workers=0) for name, make in {
        "digits": lambda **kw: VisionDataModule("digits", **kw),
        "fake": lambda **kw: VisionDataModule("fake", fake_samples=80, fake_classes=3, **kw),
        "cifar10": lambda **kw: VisionDataModule("cifar10", root=str(fake_cifar("cifar10")), **kw),
        "cifar100": lambda **kw: VisionDataModule("cifar100", root=str(fake_cifar("cifar100", n_train=300)), **kw),
        "imagefolder": lambda **kw: VisionDataModule(
            "imagefolder", root=str(image_folder({"train": {"x": 8, "y": 8}, "val": {"x": 3, "y": 3}})), **kw),
    }.items()}


@pytest.mark.parametrize("name, classes, chans, size", [
    ("digits", 10, 1, 8), ("fake", 3, 3, 32), ("cifar10", 10, 3, 32), ("cifar100", 100, 3, 32),
    ("imagefolder", 2, 3, None),  # 12×10 images: the folder does not say; the model's size is adopted
])
def test_metadata_before_setup_and_batches(modules, name, classes, chans, size):
    dm = modules[name](batch_size=4)
    assert (dm.num_classes, dm.in_chans, dm.image_size) == (classes, chans, size)
    assert len(dm.class_names) == classes and all(isinstance(n, str) for n in dm.class_names)
    assert dm._datasets == {}  # nothing was loaded to answer
    dm = modules[name](batch_size=4, image_size=12)
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader(), dm.predict_dataloader()):
        batch = next(iter(loader))
        assert set(batch) == {"image", "label"}
        assert batch["image"].shape == (4, chans, 12, 12) and batch["image"].dtype == torch.float32
        assert batch["label"].shape == (4,) and batch["label"].dtype == torch.int64
        assert batch["label"].min() >= 0 and batch["label"].max() < classes


def test_images_are_normalised_with_the_dataset_statistics(fake_cifar):
    root = fake_cifar("cifar10", n_train=40, n_test=10)
    dm = VisionDataModule("cifar10", root=str(root), batch_size=10)
    image = next(iter(dm.test_dataloader()))["image"]  # pixel (0, 0) of test image i is 40 + i, the rest 0
    mean, std = torch.tensor(dm.mean).view(3, 1), torch.tensor(dm.std).view(3, 1)
    expected = (torch.arange(40, 50).float() / 255 - mean) / std  # (3, 10)
    assert torch.allclose(image[:, :, 0, 0], expected.T, atol=1e-6)
    assert torch.allclose(image[:, :, 1, 1], (-mean / std).view(1, 3).expand(10, 3), atol=1e-6)
    raw = dm.dataset("test").samples.dataset.images
    assert raw[:, 1:, 1:].max() == 0  # normalising did not write into the stored pixels


def test_normalised_batches_are_roughly_standard():
    dm = VisionDataModule("digits", batch_size=512, augment="none")
    image = next(iter(dm.val_dataloader()))["image"]
    assert abs(image.mean().item()) < 0.2 and 0.8 < image.std().item() < 1.2


def test_train_order_and_augmentation_follow_the_seed():
    def first_batches(seed):
        loader = VisionDataModule("digits", batch_size=16, seed=seed).train_dataloader()
        return [next(iter(loader)) for _ in range(2)]  # the first batch of two epochs

    (a1, a2), (b1, _), (c1, _) = first_batches(0), first_batches(0), first_batches(1)
    assert torch.equal(a1["image"], b1["image"]) and torch.equal(a1["label"], b1["label"])
    assert not torch.equal(a1["label"], c1["label"])
    assert not torch.equal(a1["label"], a2["label"])  # each epoch reshuffles


def test_workers_draw_different_augmentations(image_folder):
    root = image_folder({"train": {"a": 8, "b": 8}}, size=(16, 16), same_image=True)
    def epoch():
        dm = VisionDataModule("imagefolder", root=str(root), image_size=16, batch_size=4, augment="imagenet",
                              num_workers=2, persistent_workers=False, val_split=0.25)
        return list(dm.train_dataloader())

    batches = epoch()  # batch 0 from worker 0, batch 1 from worker 1
    assert not torch.equal(batches[0]["image"], batches[1]["image"])
    again = epoch()
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(batches, again, strict=True))


def test_drop_last_only_for_training():
    dm = VisionDataModule("fake", fake_samples=50, fake_classes=2, batch_size=8, eval_batch_size=7)
    train, val = dm.train_dataloader(), dm.val_dataloader()
    assert train.drop_last and len(train) == len(dm.dataset("train")) // 8
    assert not val.drop_last and val.batch_size == 7
    small = VisionDataModule("fake", fake_samples=10, fake_classes=2, batch_size=64)
    assert not small.train_dataloader().drop_last and len(small.train_dataloader()) == 1


def test_class_names_travel_in_checkpoints(image_folder):
    root = image_folder({"train": {"cat": 2, "dog": 2}})
    dm = VisionDataModule("imagefolder", root=str(root))
    state = dm.state_dict()
    assert state["class_names"] == ["cat", "dog"] and state["in_chans"] == 3
    VisionDataModule("imagefolder", root=str(root)).load_state_dict(state)
    other = image_folder({"train": {"cat": 2, "emu": 2}})
    with pytest.raises(DataError, match=r"only in checkpoint: \['dog'\]; only in data: \['emu'\]"):
        VisionDataModule("imagefolder", root=str(other)).load_state_dict(state)


def test_datamodule_state_saved_by_lightning(tmp_path):
    import lightning as L

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(64, 10)

        def training_step(self, batch, _):
            return torch.nn.functional.cross_entropy(self.layer(batch["image"].flatten(1)), batch["label"])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = VisionDataModule("digits", batch_size=256)
    trainer = L.Trainer(max_steps=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, limit_val_batches=0)
    trainer.fit(Tiny(), datamodule=dm)
    trainer.save_checkpoint(tmp_path / "x.ckpt")
    saved = torch.load(tmp_path / "x.ckpt", weights_only=False)
    assert saved["VisionDataModule"]["class_names"] == [str(d) for d in range(10)]
    assert saved["datamodule_hyper_parameters"]["dataset"] == "digits"


def test_cli_parses_the_signature():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(VisionDataModule, "data")
    cfg = parser.parse_args(["--data.dataset", "fake", "--data.image_size", "16", "--data.augment", "cifar"])
    assert cfg.data.image_size == 16 and cfg.data.augment == "cifar"
    with pytest.raises(SystemExit):
        parser.parse_args(["--data.augment", "mixup"])


@pytest.mark.parametrize("kwargs, message", [
    ({"dataset": "mnist"}, "unknown dataset 'mnist' — use one of cifar10, cifar100, coco, digits, digits_detection, "
                           "fake, imagefolder"),
    ({"augment": "mixup"}, "unknown augment preset 'mixup'"),
    ({"task": "segmentation"}, "unknown task 'segmentation' — use one of classification"),
    ({"val_split": 0.0}, r"val_split=0.0 must lie strictly between 0 and 1"),
    ({"val_split": 1.0}, r"val_split=1.0 must lie strictly between 0 and 1"),
    ({"val_split": -0.2}, r"val_split=-0.2 must lie"),
    ({"image_size": 0}, "image_size=0 must be a positive integer"),
    ({"image_size": -32}, "image_size=-32 must be a positive integer"),
    ({"batch_size": 0}, "batch_size=0 must be a positive integer"),
    ({"num_workers": -1}, "num_workers=-1 must be 0"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(DataError, match=message):
        VisionDataModule(**kwargs)


def test_empty_validation_split_is_reported(image_folder):
    root = image_folder({"train": {"a": 1, "b": 1}})  # single-image classes stay in training
    with pytest.raises(DataError, match="the val split of 'imagefolder' is empty"):
        VisionDataModule("imagefolder", root=str(root)).setup()


def test_an_image_folder_reports_the_size_its_images_share(image_folder):
    """A folder of 32×32 images (CIFAR-10 as JPEGs) trains at 32 without being told; a size given wins; a folder of
    mixed sizes says nothing, and a model run on it lends its own size (through the Trainer, or the CLI)."""
    square = image_folder({"train": {"cat": 3, "dog": 3}}, size=(32, 32))
    assert VisionDataModule("imagefolder", root=str(square)).image_size == 32
    assert VisionDataModule("imagefolder", root=str(square), image_size=64).image_size == 64
    mixed = VisionDataModule("imagefolder", root=str(image_folder({"train": {"cat": 3, "dog": 3}})))
    assert mixed.image_size is None
    mixed.adopt_image_size(24)
    assert mixed.image_size == 24 and mixed.preprocessing.image_size == 24
    assert next(iter(mixed.val_dataloader()))["image"].shape[-2:] == (24, 24)
