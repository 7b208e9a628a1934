"""Augmentation presets named by intent (albumentations), and the evaluation transform that goes with each.

Every preset maps a ``uint8 (H, W, C)`` image of any size to a ``uint8 (S, S, C)`` image with ``S = image_size``.
The presets are geometry only: normalisation (or none, for generation) is the task format's business
(``vitkit.data.formats``), done on the tensor, which is cheaper than an albumentations step.

========== ======================================================================= ==============================
preset     training                                                                evaluation
========== ======================================================================= ==============================
none       = evaluation (no randomness)                                             the dataset's own
cifar      resize to S, zero-pad S/8 (4 px at 32) each side, random S×S crop, flip  resize to S
imagenet   random-resized crop (scale 0.08–1, ratio 3/4–4/3) to S, flip             shorter side to S/0.875, centre crop
digits     resize to S, small affine: ±10% shift, ±10% scale, ±10° rotation; no    resize to S
           flip, since a mirrored digit is another symbol (or none)
========== ======================================================================= ==============================

Evaluation follows the training preset because each one trains at a framing that the evaluation must match:
random-resized crops see objects larger than the full frame does, so ImageNet evaluation centre-crops; pad-crop and
affine training see the whole frame, so their evaluation does too. ``none`` takes the dataset's default preset's
evaluation (``imagenet``'s for image folders, a plain resize for the fixed-size sets).

Each training pipeline carries its own random generator (albumentations ignores global seeds): it is seeded from
``seed`` here, and re-seeded per DataLoader worker by the datamodule so workers do not repeat each other.
"""

from __future__ import annotations

from typing import Literal

AugmentPreset = Literal["none", "cifar", "imagenet", "digits"]
PRESETS: tuple[str, ...] = ("none", "cifar", "imagenet", "digits")
CENTER_CROP_FRACTION = 0.875  # ImageNet evaluation: resize to S / 0.875, keep the central S×S (224 ← 256)


def resolve_augment(augment: str, dataset_default: str) -> str:
    """``"auto"`` → the dataset's intent; otherwise check the name."""
    from vitkit.data.errors import DataError

    if augment == "auto":
        return dataset_default
    if augment not in PRESETS:
        raise DataError(f"unknown augment preset {augment!r}; valid: auto, {', '.join(PRESETS)}")
    return augment


def build_transforms(augment: str, dataset_default: str, image_size: int, *, seed: int | None = None):
    """``(train, eval)`` albumentations pipelines, called as ``transform(image=uint8 (H, W, C))["image"]``."""
    import albumentations as A

    preset = resolve_augment(augment, dataset_default)
    eval_preset = dataset_default if preset == "none" else preset
    train_ops = _eval_ops(eval_preset, image_size) if preset == "none" else _train_ops(preset, image_size)
    return A.Compose(train_ops, seed=seed), A.Compose(_eval_ops(eval_preset, image_size))


def _train_ops(preset: str, s: int) -> list:
    import albumentations as A
    import cv2

    if preset == "imagenet":
        return [A.RandomResizedCrop(size=(s, s), scale=(0.08, 1.0), area_for_downscale="image"),
                A.HorizontalFlip(p=0.5)]
    if preset == "cifar":
        pad = max(1, round(s / 8))
        return [A.Resize(s, s, area_for_downscale="image"),
                A.PadIfNeeded(s + 2 * pad, s + 2 * pad, border_mode=cv2.BORDER_CONSTANT, fill=0),
                A.RandomCrop(s, s), A.HorizontalFlip(p=0.5)]
    if preset == "digits":
        return [A.Resize(s, s, area_for_downscale="image"),
                A.Affine(translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), rotate=(-10, 10),
                         border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0)]
    raise AssertionError(preset)  # resolve_augment has checked the name


def _eval_ops(preset: str, s: int) -> list:
    import albumentations as A

    if preset == "imagenet":
        return [A.SmallestMaxSize(max_size=round(s / CENTER_CROP_FRACTION), area_for_downscale="image"),
                A.CenterCrop(s, s)]
    return [A.Resize(s, s, area_for_downscale="image")]
