"""Image folders: layout, splits, image decoding, and a clear error for each kind of bad folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vitkit.data import DataError, VisionDataModule
from vitkit.data.imagefolder import read_image

TWO_CLASSES = {"train": {"dog": 6, "cat": 5}, "val": {"dog": 2, "cat": 2}}


def test_layout_with_val_folder(image_folder):
    root = image_folder({**TWO_CLASSES, "test": {"cat": 1, "dog": 3}})
    dm = VisionDataModule("imagefolder", root=str(root), image_size=16, batch_size=4)
    assert dm.class_names == ["cat", "dog"] and dm.num_classes == 2 and dm.in_chans == 3
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [11, 4, 4]
    val = dm.dataset("val").samples
    assert sorted(val.dataset.labels[val.indices].tolist()) == [0, 0, 1, 1]
    assert all("/val/" in str(f) for f in val.dataset.files)
    assert all("/test/" in str(f) for f in dm.dataset("test").samples.dataset.files)


def test_without_val_folder_holds_out_a_stratified_seeded_split(image_folder):
    root = image_folder({"train": {"a": 10, "b": 20}})
    dm = VisionDataModule("imagefolder", root=str(root), val_split=0.2, seed=1)
    train, val = dm.dataset("train").samples, dm.dataset("val").samples
    assert not set(train.indices) & set(val.indices) and len(train) + len(val) == 30
    assert np.bincount(val.dataset.labels[val.indices]).tolist() == [2, 4]
    again = VisionDataModule("imagefolder", root=str(root), val_split=0.2, seed=1).dataset("val").samples
    assert again.indices == val.indices
    other = VisionDataModule("imagefolder", root=str(root), val_split=0.2, seed=2).dataset("val").samples
    assert other.indices != val.indices
    assert dm.dataset("test").samples is val  # no test/ and no val/: test on the held-out part


@pytest.mark.parametrize("val_folder", [True, False])
def test_validation_order_mixes_the_classes(image_folder, val_folder):
    """Sources list class by class; the validation set comes in a seeded random order, so a prefix of it (what
    ``limit_val_batches`` evaluates) samples every class instead of the first few."""
    per_class = {name: 10 for name in "abcde"}
    root = image_folder({"train": per_class, **({"val": per_class} if val_folder else {})}, size=(4, 4))
    val = VisionDataModule("imagefolder", root=str(root), val_split=0.5, seed=0).dataset("val").samples
    labels = val.dataset.labels[val.indices]
    assert sorted(val.indices) != list(val.indices) and len(set(labels[:10].tolist())) >= 4
    again = VisionDataModule("imagefolder", root=str(root), val_split=0.5, seed=0).dataset("val").samples
    assert again.indices == val.indices


def test_test_split_falls_back_to_val_folder(image_folder):
    dm = VisionDataModule("imagefolder", root=str(image_folder(TWO_CLASSES)))
    assert dm.dataset("test").samples is dm.dataset("val").samples


def test_read_image_modes(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    assert np.array_equal(read_image(tmp_path / "gray.png"), np.repeat(gray[..., None], 3, -1))

    deep = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")  # 16-bit grayscale PNG
    out = read_image(tmp_path / "deep.png")
    assert out.dtype == np.uint8 and out.shape == (3, 4, 3)
    assert np.array_equal(out[..., 0], np.rint(deep / 257).astype(np.uint8))

    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red; the rest fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    out = read_image(tmp_path / "alpha.png")
    assert out[0, 0].tolist() == [255, 0, 0] and out[1, 1].tolist() == [255, 255, 255]

    palette = Image.fromarray(rgba[..., :3], "RGB").convert("P")
    palette.save(tmp_path / "palette.gif")
    assert read_image(tmp_path / "palette.gif").shape == (2, 2, 3)

    Image.new("CMYK", (5, 3), (0, 255, 0, 0)).save(tmp_path / "cmyk.jpg")
    assert read_image(tmp_path / "cmyk.jpg").shape == (3, 5, 3)


def test_read_image_applies_exif_orientation(tmp_path):
    pixels = np.zeros((2, 4, 3), dtype=np.uint8)  # 2 rows × 4 columns, stored landscape
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    img.save(tmp_path / "rotated.jpg", exif=exif)
    assert read_image(tmp_path / "rotated.jpg").shape == (4, 2, 3)


def test_batches_from_images_of_mixed_sizes_and_modes(image_folder):
    root = image_folder({"train": {"a": 3, "b": 3}}, size=(40, 30))
    Image.new("L", (17, 50), 128).save(root / "train" / "a" / "gray.jpg")
    Image.new("RGBA", (9, 9), (0, 0, 0, 0)).save(root / "train" / "b" / "clear.png")
    dm = VisionDataModule("imagefolder", root=str(root), image_size=24, batch_size=8, val_split=0.25, augment="none",
                          num_workers=0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (6, 3, 24, 24) and batch["label"].dtype == torch.int64


# -- bad input --------------------------------------------------------------------------------------------------------


def test_root_missing_not_a_directory_or_empty(tmp_path):
    with pytest.raises(DataError, match="needs --data.root"):
        VisionDataModule("imagefolder")
    with pytest.raises(DataError, match=f"{tmp_path / 'nowhere'} does not exist.*root/train/<class>"):
        VisionDataModule("imagefolder", root=str(tmp_path / "nowhere"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="file.txt is not a directory"):
        VisionDataModule("imagefolder", root=str(tmp_path / "file.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty is empty — lay it out as root/train/<class>"):
        VisionDataModule("imagefolder", root=str(tmp_path / "empty"))


def test_no_train_folder_names_layout(image_folder):
    root = image_folder({"training": {"a": 1}})
    with pytest.raises(DataError, match=r"no train/ folder in .*it holds: training.*lay it out as root/train/<class>"):
        VisionDataModule("imagefolder", root=str(root))


def test_train_without_class_folders(image_folder, tmp_path):
    root = tmp_path / "loose"
    (root / "train").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "train" / "x.png")
    with pytest.raises(DataError, match="holds images but no class sub-folders"):
        VisionDataModule("imagefolder", root=str(root))
    (root / "train" / "x.png").unlink()
    with pytest.raises(DataError, match="has no class folders"):
        VisionDataModule("imagefolder", root=str(root))


def test_class_folder_without_images_is_named(image_folder):
    root = image_folder({"train": {"a": 2, "b": 2}})
    (root / "train" / "ghost").mkdir()
    (root / "train" / "ghost" / "notes.txt").write_text("not an image")
    dm = VisionDataModule("imagefolder", root=str(root))
    with pytest.raises(DataError, match=r"class folder .*train/ghost has no images"):
        dm.setup()


def test_mismatched_class_folders_listed(image_folder):
    root = image_folder({"train": {"a": 2, "b": 2, "c": 2}, "val": {"a": 1, "b": 1, "d": 1}})
    with pytest.raises(DataError, match=r"only in train/: \['c'\]; only in val/: \['d'\]"):
        VisionDataModule("imagefolder", root=str(root))
    root = image_folder({"train": {"a": 2, "b": 2}, "test": {"a": 1}})
    with pytest.raises(DataError, match=r"only in train/: \['b'\]; only in test/: none"):
        VisionDataModule("imagefolder", root=str(root))


@pytest.mark.parametrize("num_workers", [0, 1])
def test_corrupt_image_is_named(image_folder, num_workers):
    root = image_folder({"train": {"a": 2, "b": 2}, "val": {"a": 1, "b": 1}})
    bad = root / "val" / "b" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a JPEG")
    # (persistent workers that saw an error take torch's 5 s shutdown timeout to go; not worth waiting for here)
    dm = VisionDataModule("imagefolder", root=str(root), image_size=8, num_workers=num_workers,
                          persistent_workers=False)
    with pytest.raises(DataError, match=f"cannot read image {bad}"):
        list(dm.val_dataloader())


def test_truncated_image_is_named(image_folder):
    root = image_folder({"train": {"a": 2, "b": 2}}, size=(64, 64))
    good = root / "train" / "a" / "000.png"
    good.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match=f"cannot read image {good}"):
        read_image(good)
