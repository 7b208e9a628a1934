"""Helpers that build tiny datasets on disk: image folders (PIL) and CIFAR files in torchvision's format."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image_folder(root: Path, layout: dict[str, dict[str, int]], size: tuple[int, int] = (12, 10),
                       seed: int = 0, same_image: bool = False) -> Path:
    """``layout = {"train": {"cat": 3, "dog": 4}, "val": {...}}`` → random RGB PNGs of ``size`` (W, H)."""
    rng = np.random.default_rng(seed)
    fixed = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    for split, classes in layout.items():
        for name, count in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = fixed if same_image else rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path: Path):
    """Factory: ``image_folder(layout, **kw)`` writes the folder under a fresh tmp dir and returns its root."""
    counter = iter(range(1000))

    def make(layout: dict[str, dict[str, int]], **kwargs) -> Path:
        return write_image_folder(tmp_path / f"data{next(counter)}", layout, **kwargs)

    return make


def write_cifar(root: Path, name: str, n_train: int = 40, n_test: int = 20, classes: list[str] | None = None) -> Path:
    """Tiny CIFAR-10/100 in torchvision's on-disk layout; pixel (0, 0) of image i holds i % 256 in all channels."""
    import torchvision.datasets

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    label_key, names_key = ("labels", "label_names") if name == "cifar10" else ("fine_labels", "fine_label_names")
    n_classes = 10 if name == "cifar10" else 100
    folder = root / cls.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    files = [(f, n_train // len(cls.train_list)) for f, _ in cls.train_list] + [(cls.test_list[0][0], n_test)]
    start = 0
    for filename, count in files:
        data = np.zeros((count, 3, 32, 32), dtype=np.uint8)
        data[:, :, 0, 0] = (np.arange(start, start + count) % 256)[:, None]
        labels = [(start + i) % n_classes for i in range(count)]
        with open(folder / filename, "wb") as f:
            pickle.dump({"data": data.reshape(count, -1), label_key: labels}, f)
        start += count
    if classes is None:
        from vitkit.data.datasets import CIFAR10_CLASSES, CIFAR100_CLASSES

        classes = list(CIFAR10_CLASSES if name == "cifar10" else CIFAR100_CLASSES)
    with open(folder / cls.meta["filename"], "wb") as f:
        pickle.dump({names_key: classes}, f)
    return root


@pytest.fixture
def fake_cifar(tmp_path: Path, monkeypatch):
    """Factory for tiny CIFAR folders; torchvision's md5 check is bypassed (the real files' checksums)."""
    import torchvision.datasets.cifar

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)

    def make(name: str, **kwargs) -> Path:
        return write_cifar(tmp_path / name, name, **kwargs)

    return make


def write_coco(root: Path, images: list[dict], annotations: list[dict], categories: list[dict], *,
               ann: str = "annotations/instances_train2017.json", folder: str = "train2017",
               pixels: dict[str, object] | None = None, info: bool = True) -> Path:
    """A COCO-format file under ``root`` and black RGB PNGs for its ``images`` (``{"file_name", "width", "height"}``
    entries; ``pixels[file_name]`` may give a PIL image instead). Returns the annotation file."""
    (root / folder).mkdir(parents=True, exist_ok=True)
    for img in images:
        name = img.get("file_name")
        if not isinstance(name, str):
            continue
        picture = (pixels or {}).get(name)
        if picture is None:
            picture = Image.new("RGB", (int(img.get("width", 8)), int(img.get("height", 8))))
        picture.save(root / folder / name)
    data = {"images": images, "annotations": annotations, "categories": categories}
    if info:
        data["info"] = {"description": "test"}
    path = root / ann
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def box_image(width: int, height: int, box: tuple[int, int, int, int], mode: str = "RGB"):
    """A black image with a white ``[x, y, w, h]`` rectangle."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    x, y, w, h = box
    pixels[y:y + h, x:x + w] = 255
    return Image.fromarray(pixels).convert(mode)
