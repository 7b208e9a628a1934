"""Task formats: how one task turns a dataset's raw samples into tensors and batches.

A raw sample (``vitkit.data.datasets``) is a dict with a ``uint8 (H, W, C)`` numpy ``"image"`` and the dataset's
targets. A ``TaskFormat`` subclass states which of those keys it needs (``requires``); an instance, bound to the
dataset's ``DatasetInfo``, builds the train/eval transforms (``transforms``), maps one raw sample through a
transform to a dict of tensors (``format``, which normalises or not) and batches them (``collate``). The datamodule
owns everything else (splits, loaders, seeding), so a new task is one subclass here, registered with
``register_task_format`` and added to the ``task`` choices of ``VisionDataModule``:

- generation (Image Transformer): ``requires = {"image"}``, ``format`` returns ``{"image": uint8 (C, H, W)}``
  unnormalised (and the label when the dataset has one, for class-conditional models);
- detection (DETR): ``requires = {"image", "boxes", "labels"}``, ``transforms`` passes ``A.BboxParams`` so boxes
  follow the geometry, ``collate`` pads images to a common size and returns a pixel mask and a list of targets.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from vitkit.data.collate import stack_collate
from vitkit.data.datasets import DatasetInfo
from vitkit.data.errors import DataError
from vitkit.data.transforms import build_transforms


class TaskFormat:
    """Base task format, bound to one dataset's ``DatasetInfo``: intent presets, stacked batches.

    Subclasses set ``requires`` (raw sample keys they read) and implement ``format``.
    """

    requires: frozenset[str] = frozenset({"image"})

    def __init__(self, info: DatasetInfo) -> None:
        self.info = info

    def transforms(self, augment: str, image_size: int, seed: int, **recipe):
        """``(train, eval)`` callables ``transform(image=...) -> {"image": ...}`` (albumentations pipelines);
        ``recipe``: ``rand_augment`` / ``random_erasing`` of ``build_transforms``."""
        return build_transforms(augment, self.info.augment, image_size, seed=seed, mean=self.info.mean, **recipe)

    def format(self, sample: dict, transform) -> dict[str, Tensor]:
        raise NotImplementedError

    def collate(self, samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        return stack_collate(samples)


class ClassificationFormat(TaskFormat):
    """Samples ``{"image": float32 (C, H, W), "label": int64 ()}``; batches add a leading ``B``.

    Images are normalised per channel: ``(pixel / 255 - mean) / std`` with the dataset's statistics.
    """

    requires = frozenset({"image", "label"})

    def __init__(self, info: DatasetInfo) -> None:
        super().__init__(info)
        self.mean = torch.tensor(info.mean, dtype=torch.float32).view(-1, 1, 1) * 255  # (C, 1, 1)
        self.std = torch.tensor(info.std, dtype=torch.float32).view(-1, 1, 1) * 255  # (C, 1, 1)

    def format(self, sample: dict, transform) -> dict[str, Tensor]:
        image = transform(image=sample["image"])["image"]  # (H, W, C) uint8
        # a copy: the transform may hand back the stored pixels untouched (Resize to the same size)
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))  # (C, H, W)
        image = image.sub_(self.mean).div_(self.std)
        return {"image": image, "label": torch.tensor(sample["label"], dtype=torch.long)}


_TASK_FORMATS: dict[str, type[TaskFormat]] = {"classification": ClassificationFormat}


def register_task_format(name: str, cls: type[TaskFormat]) -> None:
    if name in _TASK_FORMATS:
        raise ValueError(f"task format {name!r} is already registered")
    _TASK_FORMATS[name] = cls


def get_task_format(name: str) -> type[TaskFormat]:
    if name not in _TASK_FORMATS:
        raise DataError(f"unknown task {name!r}; valid: {', '.join(sorted(_TASK_FORMATS))}")
    return _TASK_FORMATS[name]


class FormattedDataset(Dataset):
    """A split of raw samples seen through one transform and one task format."""

    def __init__(self, samples: Dataset, transform, task_format: TaskFormat) -> None:
        self.samples, self.transform, self.task_format = samples, transform, task_format

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.task_format.format(self.samples[index], self.transform)

    def reseed(self, seed: int) -> None:
        """Give the transform's random generator a new seed (called in each DataLoader worker)."""
        if hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(seed)
