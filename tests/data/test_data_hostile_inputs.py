"""Hostile image files (``hostile.py``: truncated JPEG, zero-byte file, not-an-image, 16-bit PNG, RGBA, palette, CMYK
JPEG, grayscale, EXIF-rotated photo, a large image and a decompression bomb, symbolic-link loops, a non-UTF-8 file
name) through both file-reading paths, the imagefolder and the COCO datasets: each good file is read as the RGB
pixels it shows, each bad one is an error naming it — in the main process and from a DataLoader worker, where the
message is the error, not the worker's traceback. ``skip_bad_files`` skips exactly the bad files and reports how
many; ``vitkit check-data`` names every one of them."""

from __future__ import annotations

import json
import logging
import os

import pytest
from hostile import BAD, LINK_LOOP, NON_UTF8, _plain, assert_image, write_corpus

from vitkit.cli import main
from vitkit.data import DataError, VisionDataModule
from vitkit.data.datasets import sample_path


def _image_folder(root):
    """train/ and val/ with classes ``mixed`` (the corpus and a folder link back to itself) and ``plain``."""
    expected = write_corpus(root / "train" / "mixed")
    os.symlink(".", root / "train" / "mixed" / "loop")  # mixed/loop/loop/... would never end
    for split, names in (("train", ("a.png", "b.png")), ("val", ("c.png",))):
        for cls in ("plain", "mixed") if split == "val" else ("plain",):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for name in names:
                data, pixels = _plain()
                (root / split / cls / name).write_bytes(data)
                if split == "train":
                    expected[name] = pixels
    return expected  # of the train split


def _coco(root, *, link_loop: bool = False):
    """images/ holding the corpus (and a folder link back to itself, through which one entry names its file) and an
    instances file giving each image its displayed size and one box."""
    images = root / "images"
    expected = write_corpus(images, link_loop=link_loop)
    os.symlink(".", images / "loop")
    names = [*expected, "loop/loop/gray.png"]
    entries, annotations = [], []
    for i, name in enumerate(names, start=1):
        shown = expected.get(name, expected["gray.png"])
        h, w = shown.shape[:2] if shown is not None else (16, 32)
        entries.append({"id": i, "file_name": name, "width": w, "height": h})
        annotations.append({"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0})
    data = {"images": entries, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}], "info": {}}
    (root / "instances.json").write_text(json.dumps(data))  # the non-UTF-8 name goes in as a \udce9 escape
    expected["loop/loop/gray.png"] = expected["gray.png"]
    return expected


def _module(kind: str, root, **kwargs) -> VisionDataModule:
    kwargs = {"augment": "none", "image_size": 8, "batch_size": 4, "num_workers": 1, "persistent_workers": False,
              **kwargs}
    if kind == "coco":
        files = {k: str(root / v) for k, v in (("train_ann", "instances.json"), ("val_ann", "instances.json"),
                                                ("train_images", "images"), ("val_images", "images"))}
        return VisionDataModule("coco", root=str(root), task="detection", **files, **kwargs)
    return VisionDataModule("imagefolder", root=str(root), **kwargs)


def _corpus(kind: str, root):
    return _coco(root) if kind == "coco" else _image_folder(root)


def _name(path: str, root) -> str:
    relative = os.path.relpath(path, root)
    return relative.split("images/", 1)[1] if relative.startswith("images/") else os.path.basename(path)


@pytest.mark.parametrize("kind", ["imagefolder", "coco"])
def test_each_file_is_read_as_shown_or_named(kind, tmp_path, caplog):
    expected = _corpus(kind, tmp_path)
    with caplog.at_level(logging.WARNING):
        samples = _module(kind, tmp_path).dataset("train").samples
    if kind == "imagefolder":  # the link loop is reported and not followed: each file is listed once
        assert "leads back to" in caplog.text and str(tmp_path / "train" / "mixed" / "loop") in caplog.text
    seen = set()
    for i in range(len(samples)):
        path = sample_path(samples, i)
        name = _name(path, tmp_path)
        assert name not in seen, f"{name} listed twice"
        seen.add(name)
        if expected[name] is None:
            with pytest.raises(DataError) as error:
                samples[i]
            assert path in str(error.value) and "cannot read image" in str(error.value)
        else:
            assert_image(name, samples[i]["image"], expected[name])
    assert seen == set(expected)
    assert NON_UTF8 in seen and os.fsencode(NON_UTF8) == b"caf\xe9.png"


@pytest.mark.parametrize("kind", ["imagefolder", "coco"])
def test_a_bad_file_met_in_a_worker_is_named_without_its_traceback(kind, tmp_path):
    _corpus(kind, tmp_path)
    with pytest.raises(DataError) as error:
        list(_module(kind, tmp_path).train_dataloader())
    message = str(error.value)
    assert any(str(tmp_path / part / name) in message for name in [*BAD, LINK_LOOP]
               for part in ("images", "train/mixed")), message
    assert "raised in DataLoader worker process 0" in message and "Traceback" not in message


@pytest.mark.parametrize("kind", ["imagefolder", "coco"])
def test_skip_bad_files_skips_them_and_reports_the_count(kind, tmp_path, caplog):
    expected = _corpus(kind, tmp_path)
    bad = sorted(name for name, pixels in expected.items() if pixels is None)
    dm = _module(kind, tmp_path, skip_bad_files=True, batch_size=1)  # no sample left out by drop_last
    batches = list(dm.train_dataloader())
    data = dm.dataset("train")
    assert sum(len(b["image"]) for b in batches) == len(data)  # each bad file replaced by a readable one
    assert sorted(_name(sample_path(data.samples, i), tmp_path) for i in data.bad_samples()) == bad
    with caplog.at_level(logging.WARNING):
        dm.teardown("fit")
    assert f"skip_bad_files: {len(bad)} unreadable files skipped in the train split" in caplog.text


def test_a_link_loop_named_by_a_coco_file_is_reported_as_one(tmp_path):
    _coco(tmp_path, link_loop=True)
    with pytest.raises(DataError, match=f"file {tmp_path / 'images' / LINK_LOOP} is a symbolic-link loop"):
        _module("coco", tmp_path).dataset("train")


@pytest.mark.parametrize("kind", ["imagefolder", "coco"])
def test_check_data_names_every_bad_file(kind, tmp_path, capsys):
    expected = _corpus(kind, tmp_path)
    if kind == "coco":
        args = ["--ann", str(tmp_path / "instances.json"), "--images", str(tmp_path / "images")]
    else:
        args = ["--dataset", "imagefolder", "--root", str(tmp_path)]
    assert main(["check-data", *args, "--full", "--per-kind", "100"]) != 0
    out = capsys.readouterr().out
    bad = [name for name, pixels in expected.items() if pixels is None]
    for name in bad:
        assert f"/{name}: " in out, f"{name} not reported:\n{out}"
    assert f"{len(bad)} error(s)" in out, out  # and nothing else
