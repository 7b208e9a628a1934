"""task="generation": raw uint8 sub-pixels, no normalisation, no augmentation; classification left as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vitkit.data import DataError, VisionDataModule


def _batch(dm, split="train"):
    loader = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}[split]()
    return next(iter(loader))


def test_digits_are_8_bit_intensities():
    from sklearn.datasets import load_digits

    dm = VisionDataModule("digits", task="generation", batch_size=16, num_workers=0)
    batch = _batch(dm)
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (16, 1, 8, 8)
    assert batch["label"].dtype == torch.long and batch["label"].shape == (16,)
    levels = set(np.unique(dm.dataset("train")[0]["image"].numpy()).tolist())
    assert levels <= {round(v * 255 / 16) for v in range(17)}  # 0..16 scaled to 0..255
    digits = load_digits()
    expected = {tuple(np.round(img * 255 / 16).astype(np.uint8).ravel()) for img in digits.images}
    for i in range(5):  # every sample is one of the original images, pixel for pixel
        assert tuple(dm.dataset("test")[i]["image"].numpy().ravel()) in expected


def test_training_images_are_not_augmented():
    dm = VisionDataModule("fake", task="generation", fake_samples=20, batch_size=4, num_workers=0, augment="auto")
    data = dm.dataset("train")
    assert torch.equal(data[3]["image"], data[3]["image"])  # the same pixels at every read
    raw = data.samples[3]["image"]  # (H, W, C) uint8
    assert torch.equal(data[3]["image"], torch.from_numpy(raw).permute(2, 0, 1))


def test_image_folder_keeps_exact_pixels_at_native_size_and_resizes_otherwise(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(3):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / cls / f"{i}.png")
    dm = VisionDataModule("imagefolder", root=str(tmp_path), task="generation", image_size=32, num_workers=0)
    sample = dm.dataset("val")[0]
    files = sorted((tmp_path / "val").rglob("*.png"))
    originals = [np.asarray(Image.open(f)).transpose(2, 0, 1) for f in files]
    assert any(np.array_equal(sample["image"].numpy(), o) for o in originals)  # no crop, no resampling
    small = VisionDataModule("imagefolder", root=str(tmp_path), task="generation", image_size=8, num_workers=0)
    assert _batch(small, "val")["image"].shape[1:] == (3, 8, 8)


def test_classification_is_unchanged():
    batch = _batch(VisionDataModule("digits", batch_size=8, num_workers=0))
    assert batch["image"].dtype == torch.float32 and abs(batch["image"].mean().item()) < 1.0


def test_unknown_task_is_reported():
    with pytest.raises(DataError, match="unknown task 'segmentation'"):
        VisionDataModule("digits", task="segmentation")
