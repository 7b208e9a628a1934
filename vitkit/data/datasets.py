"""Datasets by name: a small registry of builders that turn options into splits of raw samples.

A dataset is registered with two functions:

- ``describe(options) -> DatasetInfo`` — cheap (constants, or a scan of folder names): class names, channels,
  native image size, normalisation statistics and the augmentation intent. The datamodule calls it in its
  constructor, so ``num_classes`` & co. exist before ``setup`` and bad paths fail before a model is built.
- ``build(options, info) -> DatasetSplits`` — loads or indexes the data at ``setup`` time and returns the
  train / val / test splits.
- optionally ``prepare(options)`` — downloads, run once (rank 0) from ``prepare_data``;
- optionally ``check(options, decode) -> list[CheckReport]`` — every problem of the files the options point at,
  without stopping at the first (``vitkit check-data``; ``decode`` reads every pixel, not only headers).

A split is any map-style dataset whose items are *raw samples*: dicts holding ``"image"`` as a ``uint8`` numpy
array ``(H, W, C)`` plus the targets the dataset has (``"label": int`` for the classification sets; the detection sets
of ``vitkit.data.coco`` give ``"boxes"`` ``float32 (n, 4)`` COCO ``[x, y, w, h]`` pixels, ``"labels"`` ``int64 (n,)``,
``"image_id"`` and ``"orig_size"``). ``sample_keys`` of the registration declares those keys; a task format
(``vitkit.data.formats``) states the keys it needs, and the datamodule refuses a pairing that does not fit.
Turning raw samples into tensors (augmentation, normalisation, layout) is the task format's job, not the dataset's.

To add a dataset: write its ``describe`` and ``build`` (in this module or its own, e.g. ``imagefolder.py``) and call
``register_dataset``; import the module from ``vitkit/data/__init__.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset, Subset

from vitkit.data.errors import DataError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 20_240_101  # fixed, independent of `seed`: the digits test split never moves


@dataclass(frozen=True)
class DataOptions:
    """What the user asked for, as the builders see it (the datamodule's constructor arguments)."""

    root: Path | None = None
    image_size: int | None = None  # requested size; None = the dataset's default
    val_split: float = 0.1
    seed: int = 0
    download: bool = False
    fake_samples: int = 512
    fake_classes: int = 10
    fake_channels: int = 3
    # COCO-format detection sets: annotation files and image folders, relative to root unless absolute;
    # None = the dataset's own layout (coco: annotations/instances_{train,val}2017.json and {train,val}2017/)
    train_ann: str | None = None
    val_ann: str | None = None
    train_images: str | None = None
    val_images: str | None = None
    task: str = "classification"  # what the batches are for (a shard folder holds the records of one task)
    cache_dir: str | None = None  # remote roots (streaming): where litdata keeps the chunks it downloads


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about a dataset before loading it."""

    class_names: tuple[str, ...]
    in_chans: int
    default_image_size: int | None  # the native size; None when the images' sizes differ (the model's size decides)
    mean: tuple[float, ...]  # normalisation statistics in [0, 1] pixel units, one per channel
    std: tuple[float, ...]
    augment: str  # the augmentation preset `augment="auto"` picks (vitkit.data.transforms)
    use_workers: bool  # reading/augmenting a sample costs enough for DataLoader worker processes to pay off
    category_ids: tuple[int, ...] | None = None  # detection: the annotation file's id of each class, in label order


@dataclass(frozen=True)
class DatasetSplits:
    train: Dataset
    val: Dataset
    test: Dataset


@dataclass(frozen=True)
class DatasetSpec:
    describe: Callable[[DataOptions], DatasetInfo]
    build: Callable[[DataOptions, DatasetInfo], DatasetSplits]
    prepare: Callable[[DataOptions], None] | None = None
    sample_keys: frozenset[str] = frozenset({"image", "label"})
    check: Callable[[DataOptions, bool], list] | None = None
    remote_roots: bool = False  # --data.root may be a URL (s3://bucket/prefix, ...), handed on as a string


_DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(
    name: str,
    *,
    describe: Callable[[DataOptions], DatasetInfo],
    build: Callable[[DataOptions, DatasetInfo], DatasetSplits],
    prepare: Callable[[DataOptions], None] | None = None,
    sample_keys: frozenset[str] = frozenset({"image", "label"}),
    check: Callable[[DataOptions, bool], list] | None = None,
    remote_roots: bool = False,
) -> None:
    if name in _DATASETS:
        raise ValueError(f"dataset {name!r} is already registered")
    _DATASETS[name] = DatasetSpec(describe, build, prepare, sample_keys, check, remote_roots)


def list_datasets() -> list[str]:
    return sorted(_DATASETS)


def get_dataset(name: str) -> DatasetSpec:
    if name not in _DATASETS:
        raise DataError(f"unknown dataset {name!r}", f"use one of {', '.join(list_datasets())}")
    return _DATASETS[name]


def is_url(root: str | Path) -> bool:
    """Whether a root names remote storage: ``scheme://...`` (s3, gs, r2, azure, hf) or litdata's ``local:PATH``."""
    return isinstance(root, str) and (re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", root) is not None
                                      or root.startswith("local:"))


def data_root(root: str | Path | None, dataset: str) -> Path | str | None:
    """``--data.root`` as the builders get it: a local ``Path`` (``~`` expanded), or, for a dataset registered with
    ``remote_roots``, a URL kept as the string it is (a ``Path`` would fold ``s3://`` into ``s3:/``); ``DataError``
    for a URL given to a dataset that reads local files."""
    if root is None or str(root) == "":
        return None
    if is_url(str(root)):
        if not get_dataset(dataset).remote_roots:
            raise DataError(f"dataset {dataset!r} reads a local folder, not the URL {root}",
                            "copy the data to a local folder, or write it as shards (vitkit prepare) to that storage "
                            "and train with --data.dataset streaming --data.root URL")
        return str(root).rstrip("/")
    return Path(root).expanduser()


# ---------------------------------------------------------------------------------------------------------------------
# Raw sample sources and splitting


class ArraySource(Dataset):
    """Images held in memory, ``images (N, H, W, C) uint8`` with ``labels (N,)``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(labels):
            raise ValueError(f"expected uint8 images (N, H, W, C) and N labels, got {images.shape} {images.dtype}, "
                             f"{len(labels)} labels")
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": int(self.labels[index])}


class FakeSource(Dataset):
    """Random images with given labels; image ``i`` is the same on every call, in every process."""

    def __init__(self, labels: np.ndarray, shape: tuple[int, int, int], seed: int, stream: int) -> None:
        self.labels, self.shape, self.seed, self.stream = np.asarray(labels, dtype=np.int64), shape, seed, stream

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.stream, index])
        return {"image": rng.integers(0, 256, self.shape, dtype=np.uint8), "label": int(self.labels[index])}


def sample_path(split: Dataset, index: int) -> str:
    """The file behind sample ``index`` of a split (through any ``Subset``s), for messages; ``"sample <i>"`` for
    sources that are not files."""
    source, index = _source_of(split, index)
    return source.path(index) if hasattr(source, "path") else f"sample {index}"


def raw_sample(split: Dataset, index: int, *, encoded: bool = False) -> dict:
    """Sample ``index`` of a split; with ``encoded``, from a source that offers it (``encoded(index)``: image files),
    its image still encoded (``vitkit.data.decode.EncodedImage``) for a transform that decodes it itself."""
    if encoded:
        source, source_index = _source_of(split, index)
        if hasattr(source, "encoded"):
            return source.encoded(source_index)
    return split[index]


def _source_of(split: Dataset, index: int) -> tuple[Dataset, int]:
    while isinstance(split, Subset):
        split, index = split.dataset, split.indices[index]
    return split, index


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices ``0..N-1`` into ``(kept, held_out)``, holding out ``fraction`` of every class.

    Each class with at least two samples keeps at least one and gives at least one; a class with a single sample
    keeps it (a model cannot learn a class it never sees). The draw depends only on
    ``labels``, ``fraction`` and ``seed``; both index arrays are sorted.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_held = min(max(int(round(fraction * len(idx))), 1), len(idx) - 1)
        held.append(idx[:n_held])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), held_out)
    return kept, held_out


def split_train_val(source: Dataset, labels: np.ndarray, options: DataOptions,
                    indices: np.ndarray | None = None) -> tuple[Subset, Subset]:
    """Seeded stratified train/val split of ``source`` (restricted to ``indices`` when given). The validation
    subset comes in a seeded random order (``shuffled_order``)."""
    indices = np.arange(len(labels)) if indices is None else np.asarray(indices)
    kept, held = stratified_split(np.asarray(labels)[indices], options.val_split, options.seed)
    held = held[shuffled_order(len(held), options.seed)]
    return Subset(source, indices[kept].tolist()), Subset(source, indices[held].tolist())


def folder_splits(train: Dataset, labels: np.ndarray, val: Dataset | None, test: Dataset | None,
                  options: DataOptions) -> DatasetSplits:
    """The splits of a set laid out as ImageNet is (image folders, and shards written from them): ``train``; ``val``
    in a seeded order, else a stratified ``val_split`` of ``train`` (``labels``: its labels); ``test``, else the
    validation split."""
    if val is not None:
        train, val = Subset(train, range(len(train))), Subset(val, shuffled_order(len(val), options.seed).tolist())
    else:
        train, val = split_train_val(train, labels, options)
    return DatasetSplits(train, val, val if test is None else Subset(test, range(len(test))))


def shuffled_order(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``0..n-1`` for validation sets, which sources list class by class: any prefix of
    the validation loader (``limit_val_batches``, an interrupted validation) is then a random sample of every
    class, not the first few classes."""
    return np.random.default_rng([seed, 0x5EED]).permutation(n)


# ---------------------------------------------------------------------------------------------------------------------
# digits: scikit-learn's bundled 8×8 handwritten digits (1,797 images, no download)


def _describe_digits(options: DataOptions) -> DatasetInfo:
    # mean/std of all 1,797 images after scaling 0..16 to 0..255 (checked by a test)
    return DatasetInfo(tuple(str(d) for d in range(10)), 1, 8, (0.3053,), (0.3759,), "digits", use_workers=False)


def _build_digits(options: DataOptions, info: DatasetInfo) -> DatasetSplits:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]  # (N, 8, 8, 1), 0..16 → 0..255
    source = ArraySource(images, digits.target)
    rest, test = stratified_split(source.labels, DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    train, val = split_train_val(source, source.labels, options, indices=rest)
    return DatasetSplits(train, val, Subset(source, test.tolist()))


# ---------------------------------------------------------------------------------------------------------------------
# cifar10 / cifar100: torchvision's on-disk format under `root`

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest",
    "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard",
    "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum",
    "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper",
    "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf",
    "woman", "worm",
)
_CIFAR = {  # name → (torchvision class name, classes, mean, std); statistics of the training images
    "cifar10": ("CIFAR10", CIFAR10_CLASSES, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ("CIFAR100", CIFAR100_CLASSES, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _cifar_class(name: str):
    import torchvision.datasets

    return getattr(torchvision.datasets, _CIFAR[name][0])


def _cifar_missing(name: str, options: DataOptions) -> DataError:
    folder = options.root / _cifar_class(name).base_folder
    return DataError(f"{name} files not found in {folder} (dataset root {options.root})",
                     f"pass --data.download true to fetch them (needs internet), put torchvision's extracted {name} "
                     f"files there, or use --data.dataset imagefolder with --data.root pointing at train/ and val/ "
                     f"class folders")


def _describe_cifar(name: str) -> Callable[[DataOptions], DatasetInfo]:
    def describe(options: DataOptions) -> DatasetInfo:
        if options.root is None:
            raise DataError(f"dataset {name!r} needs a root folder", f"pass --data.root PATH (the folder that holds, "
                            f"or with --data.download true will hold, {_cifar_class(name).base_folder}/)")
        if not options.download and not (options.root / _cifar_class(name).base_folder).is_dir():
            raise _cifar_missing(name, options)
        _, classes, mean, std = _CIFAR[name]
        return DatasetInfo(classes, 3, 32, mean, std, "cifar", use_workers=True)

    return describe


def _prepare_cifar(name: str) -> Callable[[DataOptions], None]:
    def prepare(options: DataOptions) -> None:
        if options.download:
            for train in (True, False):
                _cifar_class(name)(str(options.root), train=train, download=True)

    return prepare


def _build_cifar(name: str) -> Callable[[DataOptions, DatasetInfo], DatasetSplits]:
    def load(options: DataOptions, info: DatasetInfo, train: bool) -> ArraySource:
        try:
            data = _cifar_class(name)(str(options.root), train=train, download=False)
        except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
            raise _cifar_missing(name, options) from e
        if tuple(data.classes) != info.class_names:
            raise DataError(f"the files under {options.root} do not hold {name}: their classes are {data.classes}",
                            "point --data.root at the dataset's own files, or pick the dataset they hold")
        return ArraySource(data.data, np.asarray(data.targets))

    def build(options: DataOptions, info: DatasetInfo) -> DatasetSplits:
        train_source = load(options, info, train=True)
        train, val = split_train_val(train_source, train_source.labels, options)
        test_source = load(options, info, train=False)
        return DatasetSplits(train, val, Subset(test_source, range(len(test_source))))

    return build


# ---------------------------------------------------------------------------------------------------------------------
# fake: seeded random images and labels, for tests and benchmarks


def _describe_fake(options: DataOptions) -> DatasetInfo:
    c = options.fake_channels
    # uniform bytes: mean 127.5/255, std sqrt((256² - 1) / 12) / 255
    return DatasetInfo(tuple(f"class_{i}" for i in range(options.fake_classes)), c, options.image_size or 32,
                       (0.5,) * c, (0.2898,) * c, "none", use_workers=False)


def _build_fake(options: DataOptions, info: DatasetInfo) -> DatasetSplits:
    side = info.default_image_size  # generated at the working size, so nothing is resized
    shape = (side, side, info.in_chans)
    rng = np.random.default_rng([options.seed, 0])
    n_test = max(options.fake_classes, options.fake_samples // 5)
    pool = FakeSource(rng.integers(0, options.fake_classes, options.fake_samples), shape, options.seed, stream=1)
    test = FakeSource(rng.integers(0, options.fake_classes, n_test), shape, options.seed, stream=2)
    train, val = split_train_val(pool, pool.labels, options)
    return DatasetSplits(train, val, Subset(test, range(len(test))))


def _validate_fake(options: DataOptions) -> DatasetInfo:
    for key in ("fake_samples", "fake_classes", "fake_channels"):
        if getattr(options, key) < 1:
            raise DataError(f"{key}={getattr(options, key)} must be a positive integer",
                            f"give --data.{key} a whole number above 0")
    if options.fake_samples < 2 * options.fake_classes:
        raise DataError(f"fake_samples={options.fake_samples} is too few for {options.fake_classes} classes",
                        f"use at least {2 * options.fake_classes} so every class can give a validation sample")
    return _describe_fake(options)


register_dataset("digits", describe=_describe_digits, build=_build_digits)
for _name in _CIFAR:
    register_dataset(_name, describe=_describe_cifar(_name), build=_build_cifar(_name), prepare=_prepare_cifar(_name))
register_dataset("fake", describe=_validate_fake, build=_build_fake)
