"""How an image becomes a model's input outside training: one definition per task, used by validation and testing,
``vitkit predict``, ``vitkit detect``, ``vitkit.Predictor`` and exports, and saved with every checkpoint.

A ``Preprocessing`` is the evaluation geometry that goes with the training preset (``vitkit.data.transforms``) plus
the normalisation:

=============== ================================================================================================
``resize``      what the image is resized to
=============== ================================================================================================
``resize``      ``S × S`` (the fixed-size sets, and training presets that see the whole frame: cifar, digits)
``center_crop`` shorter side to ``S / crop_fraction`` (256 for 224), then the central ``S × S`` (imagenet)
``shorter_side`` shorter side to ``S``, longer side at most ``max_size``, aspect ratio kept (DETR: 800 / 1333)
=============== ================================================================================================

then ``(pixel / 255 − mean) / std`` per channel (classification, detection) or the raw ``uint8`` intensities
(generation). Images of another channel count are converted first: RGB to one grey channel with the ITU-R 601
luma weights (as PIL's ``convert("L")``), grey to RGB by repetition.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from vitkit.errors import ConfigError

Resize = Literal["resize", "center_crop", "shorter_side"]
CENTER_CROP_FRACTION = 0.875  # ImageNet evaluation: resize to S / 0.875, keep the central S×S (224 ← 256)
DETR_MAX_SIZE_RATIO = 1333 / 800  # detection: the longer side's cap as a multiple of the shorter side's size
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Preprocessing:
    task: Literal["classification", "generation", "detection"]
    image_size: int  # S: the square side, or the shorter side for "shorter_side"
    resize: Resize
    in_chans: int
    mean: tuple[float, ...]  # per channel, in [0, 1] pixel units
    std: tuple[float, ...]
    crop_fraction: float = CENTER_CROP_FRACTION  # center_crop only
    max_size: int | None = None  # shorter_side only: cap of the longer side

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @classmethod
    def for_detection(cls, image_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Preprocessing:
        """DETR's evaluation resize at shorter side ``S``: longer side ≤ ``S · 1333 / 800``."""
        max_size = max(image_size, round(image_size * DETR_MAX_SIZE_RATIO))
        return cls("detection", image_size, "shorter_side", len(mean), mean, std, max_size=max_size)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown or "image_size" not in data:
            raise ConfigError(f"not a vitkit preprocessing description: {data!r}",
                              "use a checkpoint written by vitkit fit (it saves the data's preprocessing)")
        return cls(**data)

    def transform(self, *, boxes: bool = False):
        """The geometry as an albumentations pipeline on ``uint8 (H, W, C)`` images (``transform(image=...)``);
        ``boxes``: box-aware, taking and returning COCO ``[x, y, w, h]`` pixel ``bboxes`` and their ``labels``."""
        import albumentations as A

        s = self.image_size
        if self.resize == "center_crop":
            ops = [A.SmallestMaxSize(max_size=round(s / self.crop_fraction), area_for_downscale="image"),
                   A.CenterCrop(s, s)]
        elif self.resize == "shorter_side":
            from vitkit.data.resize_crop import ShorterSideResize

            ops = [ShorterSideResize([s], self.max_size or 10**9)]
        else:
            ops = [A.Resize(s, s, area_for_downscale="image")]
        bbox_params = A.BboxParams(format="coco", label_fields=["labels"], clip=True) if boxes else None
        return A.Compose(ops, bbox_params=bbox_params)

    def __call__(self, image: np.ndarray) -> Tensor:
        """One image ``uint8 (H, W, C)`` (any ``C`` of 1, 3 or 4) → the model's input ``(in_chans, h, w)``:
        float32 normalised, or uint8 for generation."""
        pixels = self.transform()(image=to_channels(image, self.in_chans))["image"]  # (h, w, in_chans) uint8
        if self.task == "generation":
            return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))  # (C, h, w) uint8
        return normalise(pixels, self.mean, self.std)


def normalise(image: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """``uint8 (H, W, C)`` → ``float32 (C, H, W)``: ``(pixel / 255 − mean) / std`` per channel."""
    # a copy: the transform may hand back the stored pixels untouched (a resize to the same size)
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))  # (C, H, W)
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1) * 255  # (C, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1) * 255
    return tensor.sub_(m).div_(s)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """``uint8 (H, W)`` or ``(H, W, C)`` → ``(H, W, channels)``: RGB(A) to grey by luma, grey to RGB by repetition,
    an alpha channel dropped."""
    image = image[..., None] if image.ndim == 2 else image
    have = image.shape[-1]
    if have == channels:
        return image
    if have in (3, 4) and channels == 1:
        grey = image[..., :3].astype(np.float32) @ np.asarray(LUMA, dtype=np.float32)  # (H, W)
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]
    if have == 1 and channels == 3:
        return np.repeat(image, 3, axis=-1)
    if have == 4 and channels == 3:
        return image[..., :3]
    raise ConfigError(f"an image with {have} channels cannot feed a model of {channels} input channels",
                      "convert the image to RGB or grey first")
