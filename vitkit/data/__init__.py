"""The shared data layer: one ``VisionDataModule``, a registry of datasets, augmentation presets, task formats.

Importing this package registers the built-in datasets (digits, cifar10, cifar100, imagefolder, fake, and the
COCO-format detection sets coco and digits_detection, and streaming: shards written by ``vitkit prepare``).
"""

from vitkit.data import coco, digits_detection, imagefolder, streaming  # noqa: F401  (register "coco", ...)
from vitkit.data.datamodule import VisionDataModule
from vitkit.data.datasets import DataOptions, DatasetInfo, DatasetSplits, list_datasets, register_dataset
from vitkit.data.errors import DataError
from vitkit.data.formats import TaskFormat, register_task_format

__all__ = [
    "DataError",
    "DataOptions",
    "DatasetInfo",
    "DatasetSplits",
    "TaskFormat",
    "VisionDataModule",
    "list_datasets",
    "register_dataset",
    "register_task_format",
]
