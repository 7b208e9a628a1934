"""Task formats: how one task turns a dataset's raw samples into tensors and batches.

A raw sample (``vitkit.data.datasets``) is a dict with a ``uint8 (H, W, C)`` numpy ``"image"`` and the dataset's
targets. A ``TaskFormat`` subclass states which of those keys it needs (``requires``); an instance, bound to the
dataset's ``DatasetInfo``, builds the train/eval transforms (``transforms``), maps one raw sample through a
transform to a dict of tensors (``format``, which normalises or not) and batches them (``collate``). The datamodule
owns everything else (splits, loaders, seeding), so a new task is one subclass here, registered with
``register_task_format`` and added to the ``task`` choices of ``VisionDataModule``:

- generation (Image Transformer): ``requires = {"image"}``, ``format`` returns ``{"image": uint8 (C, H, W)}``
  unnormalised (and the label when the dataset has one, for class-conditional models);
- detection (DETR, ``DetectionFormat``): ``requires = {"image", "boxes", "labels", "image_id", "orig_size"}``;
  the transforms move the boxes with the pixels (``A.BboxParams``), ``collate`` pads images to a common size and
  returns a pixel mask and a list of targets.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from vitkit import boxes as box_ops
from vitkit.data.collate import normalise_batch, normalise_collate, pad_collate, pixel_collate, stack_collate
from vitkit.data.datasets import DatasetInfo, raw_sample
from vitkit.data.errors import DataError
from vitkit.data.preprocessing import Preprocessing, normalise
from vitkit.data.sampling import SampleKey
from vitkit.data.transforms import (
    DETECTION_PRESETS,
    PRESETS,
    build_detection_transforms,
    build_transforms,
    eval_resize,
    seed_transform,
)

log = logging.getLogger(__name__)


class TaskFormat:
    """Base task format, bound to one dataset's ``DatasetInfo``: intent presets, stacked batches.

    Subclasses set ``requires`` (raw sample keys they read) and implement ``format``; ``presets`` are the
    augmentation presets that make sense for the task.
    """

    requires: frozenset[str] = frozenset({"image"})
    presets: tuple[str, ...] = PRESETS

    def __init__(self, info: DatasetInfo) -> None:
        self.info = info

    name: str = "classification"

    def transforms(self, augment: str, image_size: int, seed: int, **recipe):
        """``(train, eval)`` callables ``transform(image=...) -> {"image": ...}`` (albumentations pipelines);
        ``recipe``: ``rand_augment`` / ``random_erasing`` of ``build_transforms``. Both also take image files
        still encoded and decode them at the size they need (``vitkit.data.decoding_pipeline``)."""
        from vitkit.data.decoding_pipeline import DecodingPipeline

        train, evaluation = build_transforms(augment, self.info.augment, image_size, seed=seed, mean=self.info.mean,
                                             **recipe)
        return DecodingPipeline(train), DecodingPipeline(evaluation)

    def preprocessing(self, augment: str, image_size: int) -> Preprocessing:
        """What evaluation does to an image of this dataset (``eval`` of ``transforms``, then ``format``)."""
        info = self.info
        return Preprocessing(self.name, image_size, eval_resize(augment, info.augment), info.in_chans, info.mean,
                             info.std)

    def format(self, sample: dict, transform) -> dict[str, Tensor]:
        raise NotImplementedError

    def collate(self, samples: list[dict[str, Tensor]], *, on_device: bool = False) -> dict[str, Tensor]:
        """The batch of ``samples``; ``on_device``: leave what ``on_device`` does to it undone (classification: the
        normalisation)."""
        return stack_collate(samples)

    def on_device(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """What a batch collated with ``on_device=True`` still needs once it is on the device it trains on
        (``VisionDataModule.on_after_batch_transfer``); nothing by default."""
        return batch


class NormalisedFormat(TaskFormat):
    """Base of the formats that feed float images normalised per channel: ``(pixel / 255 - mean) / std`` with the
    dataset's statistics."""

    def normalise(self, image: np.ndarray) -> Tensor:
        """``uint8 (H, W, C)`` → ``float32 (C, H, W)`` (``vitkit.data.preprocessing.normalise``)."""
        return normalise(image, self.info.mean, self.info.std)


class ClassificationFormat(NormalisedFormat):
    """Samples ``{"image": uint8 (C, H, W), "label": int64 ()}``; batches ``{"image": float32 (B, C, H, W)
    normalised, "label": int64 (B,)}``.

    The pixels stay 8-bit until the batch is made, and with ``collate(..., on_device=True)`` until the batch is on
    the device, as timm's prefetcher and FFCV keep them: the workers stack them straight into the shared memory that
    carries the batch out (``vitkit.data.collate.pixel_collate``), a quarter of the bytes of float pixels there, in
    pinned memory and in the host-to-device copy, and ``on_device`` normalises once per batch where the model runs
    (on a GPU, next to nothing). Otherwise the workers normalise (``normalise_collate``). ``VisionDataModule``
    chooses (its ``normalise`` option).
    """

    requires = frozenset({"image", "label"})

    def format(self, sample: dict, transform) -> dict[str, Tensor]:
        image = transform(image=sample["image"])["image"]  # (H, W, C) uint8
        pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))  # (C, H, W) uint8
        return {"image": pixels, "label": torch.tensor(sample["label"], dtype=torch.long)}

    def collate(self, samples: list[dict[str, Tensor]], *, on_device: bool = False) -> dict[str, Tensor]:
        if on_device:
            return pixel_collate(samples)
        return normalise_collate(samples, self.info.mean, self.info.std)

    def on_device(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        if batch["image"].dtype != torch.uint8:  # already normalised (decoded on the device: DeviceDecodeFormat)
            return batch
        return {**batch, "image": normalise_batch(batch["image"], self.info.mean, self.info.std)}


class GenerationFormat(TaskFormat):
    """Samples ``{"image": uint8 (C, H, W)}`` plus ``"label": int64 ()`` when the dataset has labels.

    The raw 8-bit intensities, not normalised: the Image Transformer predicts each one as one of 256 categories and
    is scored in bits per sub-pixel. No augmentation either — a density model is measured on the pixels as they
    are — and no crop: the whole image is resized to ``image_size`` (left untouched when it already has that size,
    so 32×32 image folders keep their exact pixels).
    """

    requires = frozenset({"image"})
    name = "generation"

    def transforms(self, augment: str, image_size: int, seed: int, **recipe):
        """The same resize for training and evaluation (``augment`` and ``recipe`` do not apply)."""
        resize = self.preprocessing(augment, image_size)
        return resize.transform(), resize.transform()

    def preprocessing(self, augment: str, image_size: int) -> Preprocessing:
        info = self.info
        return Preprocessing("generation", image_size, "resize", info.in_chans, info.mean, info.std)

    def format(self, sample: dict, transform) -> dict[str, Tensor]:
        image = transform(image=sample["image"])["image"]  # (H, W, C) uint8
        out = {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))}  # (C, H, W) uint8
        if "label" in sample:
            out["label"] = torch.tensor(sample["label"], dtype=torch.long)
        return out


class DetectionFormat(NormalisedFormat):
    """DETR's samples (Carion et al. 2020): ``{"image": float32 (3, H, W) normalised, "target": {...}}``, batched by
    ``pad_collate`` into ``{"image": (B, 3, H, W), "pixel_mask": bool (B, H, W), "targets": [dict] * B}``.

    A target holds ``"boxes"`` ``float32 (n, 4)`` normalised ``(cx, cy, w, h)`` — relative to the image after the
    transform and before padding, as the official code and Hugging Face do; the model's sine positions are
    normalised over the unpadded pixels too —, ``"labels"`` ``int64 (n,)`` in ``0..K-1``, ``"image_id"`` (int),
    ``"orig_size"`` ``int64 (2,)`` = (height, width) of the image file and ``"size"`` ``int64 (2,)`` = (height,
    width) after the transform. ``n`` may be 0.
    """

    requires = frozenset({"image", "boxes", "labels", "image_id", "orig_size"})
    presets = DETECTION_PRESETS
    name = "detection"

    def preprocessing(self, augment: str, image_size: int) -> Preprocessing:
        return Preprocessing.for_detection(image_size, self.info.mean, self.info.std)

    def transforms(self, augment: str, image_size: int, seed: int, **recipe):
        """Box-aware pipelines; the classification ``recipe`` switches (RandAugment, erasing) do not apply (the
        datamodule refuses them for detection)."""
        return build_detection_transforms(augment, self.info.augment, image_size, seed=seed)

    def format(self, sample: dict, transform) -> dict:
        out = transform(image=sample["image"], bboxes=sample["boxes"], labels=sample["labels"])
        h, w = out["image"].shape[:2]
        boxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)  # (n, 4) x, y, w, h pixels
        labels = np.asarray(out["labels"], dtype=np.int64).reshape(-1)  # (n,)
        keep = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        target = {"boxes": box_ops.normalise(torch.from_numpy(boxes[keep]), h, w, "xywh"),
                  "labels": torch.from_numpy(labels[keep]), "image_id": int(sample["image_id"]),
                  "orig_size": torch.tensor(sample["orig_size"], dtype=torch.long),
                  "size": torch.tensor([h, w], dtype=torch.long)}
        return {"image": self.normalise(out["image"]), "target": target}

    def collate(self, samples: list[dict], *, on_device: bool = False) -> dict:
        return pad_collate(samples)


_TASK_FORMATS: dict[str, type[TaskFormat]] = {
    "classification": ClassificationFormat, "generation": GenerationFormat, "detection": DetectionFormat,
}


def register_task_format(name: str, cls: type[TaskFormat]) -> None:
    if name in _TASK_FORMATS:
        raise ValueError(f"task format {name!r} is already registered")
    _TASK_FORMATS[name] = cls


def get_task_format(name: str) -> type[TaskFormat]:
    if name not in _TASK_FORMATS:
        raise DataError(f"unknown task {name!r}", f"use one of {', '.join(sorted(_TASK_FORMATS))}")
    return _TASK_FORMATS[name]


class FormattedDataset(Dataset):
    """A split of raw samples seen through one transform and one task format.

    Indexed by an ``int`` or by the training sampler's ``SampleKey(index, epoch)``; for a key the transform is first
    reseeded from ``(seed, epoch, index)``, so each sample's augmentation is a function of those alone
    (``vitkit.data.sampling``). With ``skip_bad_files`` a sample whose file cannot be read (a ``DataError``) is
    replaced by the next readable one of the split and marked in ``bad``, a boolean tensor in shared memory that
    DataLoader workers write and the main process reads (``bad_samples``).

    ``plain_transform`` with ``plain_from_epoch``: the samples of a key of that epoch or later go through
    ``plain_transform`` (the evaluation one: RT-DETR's no-augmentation last epochs). The switch follows the epoch
    each key carries, so it reaches persistent DataLoader workers and resumed runs without rebuilding the loader.
    """

    def __init__(self, samples: Dataset, transform, task_format: TaskFormat, *, seed: int = 0,
                 skip_bad_files: bool = False, plain_transform=None, plain_from_epoch: int | None = None) -> None:
        self.samples, self.transform, self.task_format, self.seed = samples, transform, task_format, seed
        self.plain_transform, self.plain_from_epoch = plain_transform, plain_from_epoch
        self.bad = torch.zeros(len(samples), dtype=torch.bool).share_memory_() if skip_bad_files else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | SampleKey) -> dict[str, Tensor]:
        index, epoch = (key.index, key.epoch) if isinstance(key, SampleKey) else (int(key), None)
        if self.bad is None:
            return self._load(index, epoch)
        n = len(self)
        for i in (j % n for j in range(index, index + n)):
            if self.bad[i]:
                continue
            try:
                return self._load(i, epoch)
            except DataError as e:
                self.bad[i] = True
                log.warning("skip_bad_files: skipping sample %d: %s", i, e)
        raise DataError(f"no sample of this split can be read ({n} tried)", "run `vitkit check-data` on the dataset")

    def _load(self, index: int, epoch: int | None) -> dict[str, Tensor]:
        transform = self.transform
        if epoch is not None and self.plain_from_epoch is not None and epoch >= self.plain_from_epoch:
            transform = self.plain_transform
        elif epoch is not None and hasattr(transform, "set_random_state"):
            seed_transform(transform, [self.seed, epoch, index])
        sample = raw_sample(self.samples, index, encoded=getattr(transform, "decodes", False))
        return self.task_format.format(sample, transform)

    def bad_samples(self) -> list[int]:
        """Indices of the samples skipped so far as unreadable (``skip_bad_files``), in any process."""
        return [] if self.bad is None else torch.nonzero(self.bad).flatten().tolist()

    def reseed(self, seed: int) -> None:
        """Give the transform's random generator a new seed (called in each DataLoader worker)."""
        if hasattr(self.transform, "set_random_state"):
            seed_transform(self.transform, seed)
