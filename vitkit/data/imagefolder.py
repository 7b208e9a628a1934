"""Image folders laid out as ImageNet is: ``root/train/<class>/*``, ``root/val/<class>/*`` and/or ``root/test/…``.

Class names are the sorted folder names under ``train/``; label ``i`` is the ``i``-th name. Without ``val/`` a seeded,
stratified ``val_split`` fraction of ``train/`` is held out; the test split is ``test/``, else ``val/``, else that
held-out fraction. Every split must have the same class folders, and every class folder at least one image.

Images are read (``vitkit.data.decode.read_image``) into ``uint8 (H, W, 3)`` RGB: EXIF orientation applied,
grayscale replicated to three channels, 16-bit images scaled to 8 bits, transparent images composited over white
(the background a viewer shows), palette and CMYK images converted. Anything PIL cannot decode (a truncated or empty
file, a file that is not an image whatever its extension, an image over PIL's decompression-bomb limit
``PIL.Image.MAX_IMAGE_PIXELS``) is a ``DataError`` naming the file. Class folders are walked following symbolic
links, each real folder once: a link that leads back to a folder already walked (a loop) is reported and not
followed. File names that are not valid UTF-8 are kept as the bytes they are (Python's ``surrogateescape``). """

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from vitkit.data.checks import CheckReport
from vitkit.data.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataOptions,
    DatasetInfo,
    DatasetSplits,
    folder_splits,
    register_dataset,
)
from vitkit.data.decode import describe_failure, read_image  # noqa: F401  (read_image: re-exported)
from vitkit.data.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
LAYOUT = ("root/train/<class>/<images>, plus root/val/<class>/<images> and/or root/test/<class>/<images> "
          "(without val/, a --data.val_split fraction of train/ is held out)")


def _unreadable(path: str, decode: bool) -> str | None:
    """Why ``path`` cannot be read as an image (None if it can): its header, or with ``decode`` all its pixels."""
    from PIL import Image

    try:
        if decode:
            read_image(path)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    img.size  # noqa: B018  (the header is parsed on open; touching the size makes that explicit)
    except DataError as e:
        return str(e)
    except Exception as e:  # as read_image
        return f"cannot read image {path}: {describe_failure(e)}"
    return None


class ImageFileSource(Dataset):
    """Image files with labels. Paths are kept in one numpy array, not a list of Python strings, so that forked
    workers do not copy them page by page as reference counts change."""

    def __init__(self, files: list[str], labels: list[int]) -> None:
        self.files = np.array(files)
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        return {"image": read_image(self.path(index)), "label": int(self.labels[index])}

    def encoded(self, index: int) -> dict:
        """The raw sample with its image not yet decoded: ``{"image": EncodedImage, "label"}``, for transforms
        that decode at the size they need (``vitkit.data.decode``)."""
        from vitkit.data.decode import read_encoded

        return {"image": read_encoded(self.path(index)), "label": int(self.labels[index])}

    def path(self, index: int) -> str:
        return str(self.files[index])


def _check_root(root: Path | None) -> Path:
    if root is None:
        raise DataError("dataset 'imagefolder' needs --data.root PATH", f"a folder laid out as {LAYOUT}")
    if not root.exists():
        raise DataError(f"dataset root {root} does not exist",
                        f"pass --data.root pointing at a folder laid out as {LAYOUT}")
    if not root.is_dir():
        raise DataError(f"dataset root {root} is not a directory",
                        f"pass --data.root pointing at a folder laid out as {LAYOUT}")
    entries = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    if not entries:
        raise DataError(f"dataset root {root} is empty", f"lay it out as {LAYOUT}")
    if not (root / "train").is_dir():
        raise DataError(f"no train/ folder in {root} (it holds: {', '.join(entries[:10])}"
                        f"{', ...' if len(entries) > 10 else ''})", f"lay it out as {LAYOUT}")
    return root


def _class_folders(split_dir: Path) -> list[str]:
    names = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        loose = any(p.suffix.lower() in IMAGE_EXTENSIONS for p in split_dir.iterdir())
        what = "holds images but no class sub-folders" if loose else "has no class folders"
        raise DataError(f"{split_dir} {what}",
                        f"put each class's images in {split_dir}/<class name>/ (layout: {LAYOUT})")
    return names


def _check_same_classes(train_dir: Path, train_classes: list[str], other_dir: Path) -> None:
    other = _class_folders(other_dir)
    if other != train_classes:
        only_train = sorted(set(train_classes) - set(other))
        only_other = sorted(set(other) - set(train_classes))
        raise DataError(f"class folders differ between {train_dir} and {other_dir}: only in {train_dir.name}/: "
                        f"{only_train or 'none'}; only in {other_dir.name}/: {only_other or 'none'}",
                        "every split needs the same class folders (class i is the i-th sorted folder name)")


def _describe(options: DataOptions) -> DatasetInfo:
    root = _check_root(options.root)
    classes = _class_folders(root / "train")
    for split in ("val", "test"):
        if (root / split).is_dir():
            _check_same_classes(root / "train", classes, root / split)
    return DatasetInfo(tuple(classes), 3, shared_image_size(root / "train", classes), IMAGENET_MEAN, IMAGENET_STD,
                       "imagenet", use_workers=True)


def shared_image_size(split_dir: Path, classes: list[str], *, per_class: int = 4, max_classes: int = 16) -> int | None:
    """The side of the images under ``split_dir`` when a sample of them (a few files of up to ``max_classes``
    classes, headers only) are all square of one size — CIFAR-10 as JPEGs: 32 — else ``None`` (photos of many
    sizes: the model's design size decides)."""
    from PIL import Image

    step = max(1, len(classes) // max_classes)
    sizes = set()
    for name in classes[::step][:max_classes]:
        with os.scandir(split_dir / name) as entries:
            files = [e.path for e in entries if os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS]
        for path in sorted(files)[:per_class]:
            try:
                with Image.open(path) as img:
                    sizes.add(img.size)
            except Exception:  # an unreadable file is reported where it is loaded (or by check-data), not here
                continue
        if len(sizes) > 1:
            return None
    if len(sizes) == 1 and (side := next(iter(sizes)))[0] == side[1]:
        return side[0]
    return None


def _image_files(class_dir: Path) -> list[str]:
    """The image files under one class folder (recursively, following links, each real folder once), sorted."""
    files, walked = [], {}

    def unreadable(error: OSError) -> None:
        log.warning("cannot list %s (%s): its images are left out", error.filename, error.strerror)

    for folder, dirs, names in os.walk(class_dir, followlinks=True, onerror=unreadable):
        st = os.stat(folder)
        first = walked.setdefault((st.st_dev, st.st_ino), folder)
        if first != folder:  # reached again through a symbolic link: a loop, or a second way to the same images
            log.warning("%s leads back to %s (a symbolic-link loop or duplicate): not followed", folder, first)
            dirs[:] = []
            continue
        dirs.sort()
        files += [os.path.join(folder, f) for f in names
                  if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
    return sorted(files)


def _no_images(class_dir: Path) -> tuple[str, str]:
    return (f"class folder {class_dir} has no images (looked for files ending in {', '.join(IMAGE_EXTENSIONS)})",
            "add images or remove the folder from every split")


def _list_images(split_dir: Path, classes: tuple[str, ...]) -> ImageFileSource:
    files, labels = [], []
    for label, name in enumerate(classes):
        found = _image_files(split_dir / name)
        if not found:
            raise DataError(*_no_images(split_dir / name))
        files += found
        labels += [label] * len(found)
    return ImageFileSource(files, labels)


def check_image_folder(root: Path, *, decode: bool = False) -> CheckReport:
    """``vitkit check-data --dataset imagefolder``: the layout, then every image opened (its header read, or all of
    it decoded with ``decode``); each problem named."""
    report = CheckReport(str(root))
    try:
        info = _describe(DataOptions(root=Path(root)))
    except DataError as e:
        report.add("error", "layout", "", str(e), f"lay the folder out as {LAYOUT}")
        return report
    counts = []
    for split in ("train", "val", "test"):
        if not (root / split).is_dir():
            continue
        n = 0
        for name in info.class_names:
            files = _image_files(root / split / name)
            if not files:
                report.add("error", "empty_class_folder", f"{split}/{name}", _no_images(root / split / name)[0],
                           "add images to the folder, or remove it from every split")
            for file in files:
                problem = _unreadable(file, decode)
                if problem:
                    report.add("error", "image_unreadable", file, problem, "replace the file or delete it")
            n += len(files)
        counts.append(f"{n} {split} images")
    report.summary = f"{len(info.class_names)} classes; {', '.join(counts)}"
    return report


def _build(options: DataOptions, info: DatasetInfo) -> DatasetSplits:
    root = options.root
    train = _list_images(root / "train", info.class_names)
    val = _list_images(root / "val", info.class_names) if (root / "val").is_dir() else None
    test = _list_images(root / "test", info.class_names) if (root / "test").is_dir() else None
    if test is None:
        log.info("%s has no test/ folder: the test split is the validation split", root)
    return folder_splits(train, train.labels, val, test, options)


def list_split(root: Path, split: str, classes: tuple[str, ...]) -> ImageFileSource:
    """The image files of ``root/split/<class>/`` for each class, labelled by class position (``vitkit prepare``)."""
    return _list_images(root / split, classes)


def describe_folder(root: Path) -> DatasetInfo:
    """Class names and shared size of the image folder at ``root`` (``DataError`` when it is not one)."""
    return _describe(DataOptions(root=Path(root)))


def _check(options: DataOptions, decode: bool = False) -> list[CheckReport]:
    if options.root is None:
        raise DataError("dataset 'imagefolder' needs --data.root PATH", f"a folder laid out as {LAYOUT}")
    return [check_image_folder(options.root, decode=decode)]


register_dataset("imagefolder", describe=_describe, build=_build, check=_check)
