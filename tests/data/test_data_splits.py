"""Dataset builders and splitting: digits, fake and CIFAR splits are disjoint, seeded, stratified."""

from __future__ import annotations

import numpy as np
import pytest

from vitkit.data import DataError, VisionDataModule, list_datasets
from vitkit.data.datasets import CIFAR100_CLASSES, DIGITS_TEST_FRACTION, stratified_split


def _indices(dm: VisionDataModule, split: str) -> list[int]:
    return list(dm.dataset(split).samples.indices)


def _labels(dm: VisionDataModule, split: str) -> np.ndarray:
    subset = dm.dataset(split).samples
    return subset.dataset.labels[np.asarray(subset.indices)]


def test_builtin_datasets_registered():
    assert {"digits", "cifar10", "cifar100", "imagefolder", "fake"} <= set(list_datasets())


def test_stratified_split_is_disjoint_seeded_and_per_class():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    kept, held = stratified_split(labels, 0.2, seed=3)
    assert np.intersect1d(kept, held).size == 0
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(100))
    assert np.bincount(labels[held]).tolist() == [2, 4, 6, 8]
    again_kept, again_held = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(held, again_held) and np.array_equal(kept, again_kept)
    assert not np.array_equal(held, stratified_split(labels, 0.2, seed=4)[1])


def test_stratified_split_small_classes_give_one_and_keep_one():
    labels = np.array([0, 0, 1, 1, 1, 2])
    kept, held = stratified_split(labels, 0.01, seed=0)
    assert sorted(labels[held].tolist()) == [0, 1]  # class 2 has a single sample: it stays in training
    kept, held = stratified_split(labels, 0.99, seed=0)
    assert set(labels[kept].tolist()) == {0, 1, 2}


def test_digits_splits_disjoint_stratified_and_test_fixed():
    dm = VisionDataModule("digits", val_split=0.2, seed=0)
    train, val, test = (set(_indices(dm, s)) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert len(train | val | test) == 1797
    assert abs(len(test) - DIGITS_TEST_FRACTION * 1797) <= 10
    for split, fraction in (("test", 0.2), ("val", 0.2 * 0.8)):
        counts = np.bincount(_labels(dm, split), minlength=10)
        full = np.bincount(dm.dataset("test").samples.dataset.labels, minlength=10)
        assert np.all(np.abs(counts - fraction * full) <= 1.5), (split, counts)
    other = VisionDataModule("digits", val_split=0.1, seed=7)
    assert _indices(other, "test") == _indices(dm, "test")  # the test split never moves
    assert _indices(other, "val") != _indices(dm, "val")
    assert _indices(VisionDataModule("digits", val_split=0.2, seed=0), "val") == _indices(dm, "val")


def test_digits_pixels_and_statistics():
    from sklearn.datasets import load_digits

    dm = VisionDataModule("digits")
    sample = dm.dataset("train").samples[0]
    assert sample["image"].dtype == np.uint8 and sample["image"].shape == (8, 8, 1)
    pixels = np.round(load_digits().images * 255 / 16) / 255
    assert pixels.max() == 1.0
    assert dm.mean == pytest.approx((pixels.mean(),), abs=1e-3)
    assert dm.std == pytest.approx((pixels.std(),), abs=1e-3)


def test_fake_is_deterministic_per_index_and_seed():
    a = VisionDataModule("fake", fake_samples=40, fake_classes=4, fake_channels=2, image_size=6, seed=1)
    b = VisionDataModule("fake", fake_samples=40, fake_classes=4, fake_channels=2, image_size=6, seed=1)
    c = VisionDataModule("fake", fake_samples=40, fake_classes=4, fake_channels=2, image_size=6, seed=2)
    raw_a, raw_b, raw_c = (dm.dataset("train").samples for dm in (a, b, c))
    assert raw_a[3]["image"].shape == (6, 6, 2)
    assert np.array_equal(raw_a[3]["image"], raw_a[3]["image"])
    assert np.array_equal(raw_a[3]["image"], raw_b[3]["image"]) and raw_a[3]["label"] == raw_b[3]["label"]
    assert not np.array_equal(raw_a[3]["image"], raw_c[3]["image"])
    assert a.num_classes == 4 and a.in_chans == 2 and a.image_size == 6
    assert not set(_indices(a, "train")) & set(_indices(a, "val"))
    assert len(a.dataset("test")) == 8


def test_fake_rejects_bad_sizes():
    with pytest.raises(DataError, match="fake_classes=0"):
        VisionDataModule("fake", fake_classes=0)
    with pytest.raises(DataError, match="fake_samples=5 is too few"):
        VisionDataModule("fake", fake_samples=5, fake_classes=4)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reads_torchvision_files(fake_cifar, name):
    root = fake_cifar(name, n_train=200, n_test=30)
    dm = VisionDataModule(name, root=str(root), val_split=0.1)
    assert dm.num_classes == (10 if name == "cifar10" else 100) and dm.in_chans == 3 and dm.image_size == 32
    train, val = set(_indices(dm, "train")), set(_indices(dm, "val"))
    assert not train & val and len(train | val) == 200
    assert len(dm.dataset("test")) == 30
    sample = dm.dataset("test").samples[5]
    assert sample["image"].shape == (32, 32, 3) and sample["image"][0, 0].tolist() == [205] * 3  # 200 + 5
    assert sample["label"] == 205 % dm.num_classes


def test_cifar100_class_names_are_the_hundred_fine_labels():
    assert len(set(CIFAR100_CLASSES)) == 100 and list(CIFAR100_CLASSES) == sorted(CIFAR100_CLASSES)


def test_cifar_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(DataError, match=r"cifar-10-batches-py.*--data\.download true.*imagefolder"):
        VisionDataModule("cifar10", root=str(tmp_path))
    with pytest.raises(DataError, match="needs a root folder"):
        VisionDataModule("cifar100")


def test_cifar_incomplete_files_fail_at_setup(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()  # folder present, files missing: torchvision's check fails
    dm = VisionDataModule("cifar10", root=str(tmp_path))
    with pytest.raises(DataError, match="files not found"):
        dm.setup()


def test_cifar_other_classes_rejected(fake_cifar):
    root = fake_cifar("cifar10", classes=[f"c{i}" for i in range(10)])
    with pytest.raises(DataError, match="do not hold cifar10"):
        VisionDataModule("cifar10", root=str(root)).setup()
