"""Augmentation presets: shapes, randomness where intended, seeding, and the evaluation that goes with each."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from vitkit.data import DataError
from vitkit.data.transforms import PRESETS, build_transforms


def _images(n: int = 8, h: int = 20, w: int = 28, c: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, c), dtype=np.uint8) for _ in range(n)]


def _apply(transform, images):
    return np.stack([transform(image=im)["image"] for im in images])


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("size", [8, 16])
def test_every_preset_gives_square_uint8_images(preset, size):
    train, evaluation = build_transforms(preset, "cifar", size, seed=0)
    for transform in (train, evaluation):
        out = _apply(transform, _images())
        assert out.shape == (8, size, size, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("preset", ["cifar", "imagenet", "digits"])
def test_random_presets_differ_from_eval_and_none_does_not(preset):
    images = _images()
    train, evaluation = build_transforms(preset, "cifar", 16, seed=0)
    assert not np.array_equal(_apply(train, images), _apply(evaluation, images))
    train, evaluation = build_transforms("none", preset, 16, seed=0)
    assert np.array_equal(_apply(train, images), _apply(evaluation, images))


def test_augmentation_is_seeded():
    images = _images()
    first = _apply(build_transforms("imagenet", "imagenet", 16, seed=3)[0], images)
    again = _apply(build_transforms("imagenet", "imagenet", 16, seed=3)[0], images)
    other = _apply(build_transforms("imagenet", "imagenet", 16, seed=4)[0], images)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_eval_pairs_with_training_framing():
    image = np.zeros((32, 64, 3), dtype=np.uint8)
    image[:, :8] = 255  # a bright stripe at the left edge
    crop = build_transforms("imagenet", "cifar", 16)[1](image=image)["image"]  # centre crop drops the edge
    assert crop.shape == (16, 16, 3) and crop.max() == 0
    whole = build_transforms("cifar", "imagenet", 16)[1](image=image)["image"]  # full-frame resize keeps it
    assert whole.shape == (16, 16, 3) and whole[:, 0].min() == 255
    none_on_imagenet = build_transforms("none", "imagenet", 16)[1](image=image)["image"]
    assert none_on_imagenet.max() == 0  # "none" evaluates as the dataset's own preset


def test_cifar_pads_by_an_eighth_and_digits_never_flip():
    train, _ = build_transforms("cifar", "cifar", 32)
    pad = next(t for t in train.transforms if isinstance(t, A.PadIfNeeded))
    assert (pad.min_height, pad.min_width) == (40, 40)
    train, _ = build_transforms("digits", "digits", 8)
    assert not any(isinstance(t, (A.HorizontalFlip, A.VerticalFlip)) for t in train.transforms)


def test_grayscale_images_keep_one_channel():
    train, evaluation = build_transforms("digits", "digits", 16, seed=0)
    assert _apply(train, _images(c=1)).shape == (8, 16, 16, 1)


def test_unknown_preset():
    with pytest.raises(DataError, match="unknown augment preset 'mixup' — use one of auto, none, cifar"):
        build_transforms("mixup", "cifar", 16)


@pytest.mark.parametrize(("channels", "box"), [(3, (13, 7, 613, 457)), (1, (13, 7, 613, 457)), (3, (5, 9, 105, 89)),
                                             (1, (300, 7, 360, 457))])
def test_training_crop_resizes_as_pil_bilinear(channels, box):
    """The imagenet preset's crop (box ``(x1, y1, x2, y2)``) is resized as torchvision and timm resize it (PIL's
    antialiased bilinear), to within a level: shrinking about 2.8× on detail that an unfiltered bilinear resize
    would alias, enlarging, and both at once."""
    from PIL import Image

    from vitkit.data.transforms import RandomResizedCrop

    pixels = np.random.default_rng(0).integers(0, 256, (480, 640, channels), dtype=np.uint8)  # (H, W, C) noise
    ours = RandomResizedCrop(size=(160, 224)).apply(pixels, crop_coords=box)
    crop = pixels[box[1]:box[3], box[0]:box[2]]
    crop = Image.fromarray(crop.squeeze(-1) if channels == 1 else crop)
    reference = np.asarray(crop.resize((224, 160), Image.BILINEAR)).reshape(160, 224, channels)
    assert ours.shape == (160, 224, channels) and ours.dtype == np.uint8
    difference = np.abs(ours.astype(np.int16) - reference)
    assert difference.max() <= 1, difference.max()
