"""``--data.decode gpu`` (``vitkit.data.device_decode``), run here on the CPU (``device="cpu"``: the same code; no
GPU on the machines CI uses): the workers' plans give the CPU path's crops and flips, and the device-side decode,
crop, resize and flip give its pixels up to the resize filter; the datamodule refuses the path without a GPU."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from vitkit.data import DataError, VisionDataModule
from vitkit.data.device_decode import DeviceDecodeFormat
from vitkit.data.formats import FormattedDataset
from vitkit.data.sampling import SampleKey


@pytest.fixture
def photos(tmp_path):
    from sklearn.datasets import load_sample_image

    photo = load_sample_image("flower.jpg")  # (427, 640, 3)
    for i in range(12):
        folder = tmp_path / "train" / f"c{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        crop = photo[20 * i:20 * i + 180, 30 * i:30 * i + 240]  # (180, 240, 3)
        if i == 5:  # not a JPEG: decoded in the worker, travels as pixels
            Image.fromarray(crop).save(folder / f"{i}.png")
        else:
            Image.fromarray(crop).save(folder / f"{i}.jpg", quality=90)
    return tmp_path


def _levels(batch: torch.Tensor, dm: VisionDataModule) -> torch.Tensor:
    """Normalised images back to 0..255 levels."""
    std, mean = torch.tensor(dm.std).view(1, -1, 1, 1), torch.tensor(dm.mean).view(1, -1, 1, 1)
    return (batch * std + mean) * 255


@pytest.mark.parametrize("split", ["train", "val"])
def test_device_decode_gives_the_cpu_paths_images(photos, split):
    dm = VisionDataModule("imagefolder", root=str(photos), image_size=48, num_workers=0, augment="imagenet",
                          val_split=0.5)
    cpu = dm.dataset(split)
    fmt = DeviceDecodeFormat(dm.info)
    train_tf, eval_tf = fmt.transforms(dm.augment, 48, dm.seed)
    deferred = FormattedDataset(cpu.samples, train_tf if split == "train" else eval_tf, fmt, seed=dm.seed)
    keys = [SampleKey(i, 0) for i in range(len(cpu))]
    batch = fmt.collate([deferred[k] for k in keys])
    pngs = sum(str(cpu.samples.dataset.files[i]).endswith(".png") for i in cpu.samples.indices)
    assert sum(data is not None for data in batch["jpeg"]) == len(keys) - pngs  # JPEGs deferred, the PNG not
    device = fmt.decode_batch(batch, torch.device("cpu"))
    expected = dm.task_format.collate([cpu[k] for k in keys])
    assert device["image"].shape == expected["image"].shape and torch.equal(device["label"], expected["label"])
    difference = (_levels(device["image"], dm) - _levels(expected["image"], dm)).abs().mean(dim=(1, 2, 3))
    other = dm.task_format.collate([cpu[SampleKey(i, 1)] for i in range(len(cpu))])  # the next epoch's crops
    apart = (_levels(other["image"], dm) - _levels(expected["image"], dm)).abs().mean(dim=(1, 2, 3))
    assert difference.max() < 6.0, difference  # antialiased bilinear on the device, area on the CPU
    if split == "train":
        assert apart.median() > 15.0, apart


def test_gpu_decode_is_refused_without_a_gpu_or_with_cpu_only_steps(photos):
    if not torch.cuda.is_available():
        with pytest.raises(DataError, match="needs a CUDA GPU"):
            VisionDataModule("imagefolder", root=str(photos), decode="gpu")
    with pytest.raises(DataError, match="rand_augment"):
        VisionDataModule("imagefolder", root=str(photos), decode="gpu", rand_augment="rand-m9-mstd0.5")
