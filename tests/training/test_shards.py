"""Training from streaming shards (``vitkit prepare`` + ``--data.dataset streaming``) keeps the image folder's
guarantees: a killed run resumed mid-epoch ends bit for bit like an uninterrupted one (as ``test_resume.py``); two
processes with the same global batch step through exactly the images and augmentations of one (as ``test_ddp.py``,
at the data level: the loaders of rank 0 and 1 against the loader of one process); the same samples, labels and
class names as the folder; bad records named; a folder that is not a complete shard folder refused in one line."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from forked import ROOT, KillAtStep, run_forked
from PIL import Image

from vitkit.cli import main as vitkit
from vitkit.data import DataError, VisionDataModule
from vitkit.data.decoding_pipeline import DecodingPipeline
from vitkit.data.shards import MANIFEST
from vitkit.weights.io import load_pickle_safely

CLASSES = ("cat", "dog", "fox")


def _photo_folder(root: Path, counts: dict[str, int]) -> Path:
    """JPEG crops of a real photo (scikit-learn's china.jpg) of a few sizes, ``counts[split]`` per class."""
    from sklearn.datasets import load_sample_image

    photo = load_sample_image("china.jpg")  # (427, 640, 3)
    rng = np.random.default_rng(0)
    for split, n in counts.items():
        for c, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = int(rng.integers(30, 60)), int(rng.integers(30, 60))
                y, x = int(rng.integers(0, 427 - 4 * h)), int(rng.integers(0, 640 - 4 * w))
                crop = photo[y:y + 4 * h:4, x:x + 4 * w:4] // (c + 1)  # (h, w, 3): classes differ in brightness
                Image.fromarray(np.ascontiguousarray(crop)).save(root / split / name / f"{i:02d}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return _photo_folder(tmp_path_factory.mktemp("photos"), {"train": 16, "val": 4})


@pytest.fixture(scope="module")
def shards(folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "out"
    assert vitkit(["prepare", "--from", str(folder), "--to", str(out), "--workers", "1"]) == 0
    return out


def _module(root: Path, **kwargs) -> VisionDataModule:
    return VisionDataModule("streaming", root=str(root), image_size=24, num_workers=0, augment="imagenet", **kwargs)


def _attach(dm: VisionDataModule, world: int, rank: int) -> VisionDataModule:
    dm.trainer = SimpleNamespace(world_size=world, global_rank=rank, accumulate_grad_batches=1, lightning_module=None)
    return dm


def test_shards_hold_the_folders_samples(folder, shards):
    plain = VisionDataModule("imagefolder", root=str(folder), image_size=24, num_workers=0)
    dm = _module(shards)
    assert dm.class_names == plain.class_names == list(CLASSES)
    assert isinstance(dm.dataset("train").transform, DecodingPipeline)
    for split in ("train", "val"):
        ours, theirs = dm.dataset(split), plain.dataset(split)
        assert len(ours) == len(theirs)
        for i in (0, 5, len(ours) - 1):  # the same image and label, augmentation and all
            a, b = ours[i], theirs[i]
            assert torch.equal(a["image"], b["image"]) and a["label"] == b["label"], (split, i)


def test_two_processes_step_through_the_images_of_one(shards):
    one = _attach(_module(shards, global_batch_size=8), 1, 0).train_dataloader()
    ranks = [_attach(_module(shards, global_batch_size=8), 2, r).train_dataloader() for r in (0, 1)]
    for epoch in (0, 1):
        for loader in (one, *ranks):
            loader.sampler.set_epoch(epoch)
        steps = 0
        for big, *small in zip(one, *ranks, strict=True):
            both = torch.stack([small[0]["image"], small[1]["image"]], dim=1).flatten(0, 1)  # (8, C, H, W)
            labels = torch.stack([small[0]["label"], small[1]["label"]], dim=1).flatten()
            assert torch.equal(both, big["image"]) and torch.equal(labels, big["label"]), (epoch, steps)
            steps += 1
        assert steps == len(one) == 6  # 48 training images, batches of 8


def test_a_saved_position_resumes_the_same_batches(shards):
    whole = _module(shards, batch_size=4).train_dataloader()
    whole.sampler.set_epoch(1)
    expected = [b["image"] for b in whole]
    dm = _module(shards, batch_size=4)
    cut = dm.train_dataloader()
    cut.sampler.set_epoch(1)
    batches = iter(cut)
    for _ in range(4):
        next(batches)
    state = dm.state_dict()
    resumed = _module(shards, batch_size=4)
    resumed.load_state_dict(state)
    loader = resumed.train_dataloader()
    loader.sampler.set_epoch(1)
    rest = [b["image"] for b in loader]
    assert len(rest) == len(expected) - 4
    assert all(torch.equal(a, b) for a, b in zip(rest, expected[4:], strict=True))


def test_killed_and_resumed_run_through_shards_ends_like_an_uninterrupted_one(shards, tmp_path):
    args = ["fit", "-c", str(ROOT / "configs/vit/digits.yaml"), "--data.dataset", "streaming",
            "--data.root", str(shards), "--data.image_size", "8", "--data.augment", "imagenet",
            "--data.batch_size", "8", "--data.num_workers", "0", "--model.init_args.drop_path_rate", "0.1",
            "--trainer.max_epochs", "2", "--trainer.limit_val_batches", "1", "--trainer.deterministic", "true",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.num_sanity_val_steps", "0", "--checkpoint_every_n_steps", "2",
            f"--trainer.default_root_dir={tmp_path}"]
    assert run_forked([*args, "--run_name", "whole"]) == 0
    assert run_forked([*args, "--run_name", "cut"], callbacks=[KillAtStep(9)]) == -signal.SIGKILL
    assert load_pickle_safely(tmp_path / "cut/version_0/checkpoints/last.ckpt")["global_step"] == 8  # mid-epoch 2
    assert run_forked([*args, "--run_name", "cut", "--ckpt_path", "last"]) == 0
    whole = load_pickle_safely(tmp_path / "whole/version_0/checkpoints/last.ckpt")
    resumed = load_pickle_safely(tmp_path / "cut/version_1/checkpoints/last.ckpt")
    assert resumed["global_step"] == whole["global_step"] == 12  # 2 epochs of 48 / 8 steps
    for key, value in whole["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_pre_resized_shards_keep_the_longer_side(folder, tmp_path):
    out = tmp_path / "small"
    assert vitkit(["prepare", "--from", str(folder), "--to", str(out), "--max-side", "20", "--workers", "1"]) == 0
    raw = VisionDataModule("streaming", root=str(out), image_size=16, num_workers=0).dataset("val").samples
    shapes = {raw[i]["image"].shape for i in range(len(raw))}
    assert all(max(h, w) == 20 and c == 3 for h, w, c in shapes), shapes


def test_bad_records_are_named_and_skipped(folder, tmp_path):
    bad_folder = tmp_path / "photos"
    for path in folder.rglob("*.jpg"):
        target = bad_folder / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    cut = bad_folder / "train/dog/03.jpg"
    cut.write_bytes(cut.read_bytes()[:200])
    out = tmp_path / "out"
    assert vitkit(["prepare", "--from", str(bad_folder), "--to", str(out)]) == 0  # full size: bytes copied as is
    with pytest.raises(DataError, match="train/dog/03.jpg"):
        list(_module(out, batch_size=8).train_dataloader())
    dm = _module(out, batch_size=8, skip_bad_files=True)
    assert sum(len(b["label"]) for b in dm.train_dataloader()) == 48
    assert dm.dataset("train").bad_samples() != []


def test_not_a_shard_folder_is_one_line_saying_how_to_prepare(shards, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(DataError, match="vitkit prepare --from IMAGE_FOLDER"):
        _module(other)
    copy = tmp_path / "copy"
    copy.mkdir()
    manifest = json.loads((shards / MANIFEST).read_text())
    (copy / MANIFEST).write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(DataError, match="version 99.*vitkit prepare"):
        _module(copy)
    (copy / MANIFEST).write_text(json.dumps(manifest))  # index files missing
    with pytest.raises(DataError, match="index.json is missing.*vitkit prepare"):
        _module(copy)
    assert vitkit(["fit", "-c", str(ROOT / "configs/vit/digits.yaml"), "--data.dataset", "streaming",
                   "--data.root", str(copy)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("vitkit: error:")]
    assert len(lines) == 1 and "vitkit prepare" in lines[0] and "Traceback" not in err, err


def test_prepare_refuses_a_non_empty_folder(folder, shards, tmp_path, capsys):
    assert vitkit(["prepare", "--from", str(folder), "--to", str(shards)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert vitkit(["prepare", "--from", str(folder), "--to", str(mine), "--overwrite"]) == 2
    assert (mine / "notes.txt").is_file()


@pytest.mark.slow
def test_two_processes_train_from_shards_like_one(shards, tmp_path):
    """As ``test_ddp.py`` for the digits: ``torchrun`` with two CPU processes against one forked process, the same
    global batch, from shards; the validation metrics agree."""
    import os
    import sys

    from forked import validation_rows
    from test_ddp import DDP, ONE, _run_group

    common = ["fit", "-c", str(ROOT / "configs/vit/digits.yaml"), "--data.dataset", "streaming",
              "--data.root", str(shards), "--data.image_size", "8", "--data.augment", "imagenet",
              "--data.global_batch_size", "16", "--data.num_workers", "0", "--trainer.max_epochs", "1",
              "--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "false",
              "--trainer.num_sanity_val_steps", "0", f"--trainer.default_root_dir={tmp_path}"]
    (tmp_path / "commands.json").write_text(json.dumps([[*common, *DDP, "--run_name", "ddp"]]))
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
              str(ROOT / "tests/training/ddp_driver.py"), str(tmp_path / "commands.json")]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)
    done = _run_group(launch, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    # a fresh process, not a fork: a fork of a pytest process in which autograd has already run cannot backpropagate
    one = _run_group([sys.executable, "-m", "vitkit.cli", *common, *ONE, "--run_name", "one"], env=env, cwd=tmp_path,
                     timeout=600)
    assert one.returncode == 0, one.stderr[-4000:]
    one, two = (validation_rows(tmp_path / name / "version_0")[-1] for name in ("one", "ddp"))
    assert two["val/acc1"] == pytest.approx(one["val/acc1"], abs=1e-6)
    assert two["val/loss"] == pytest.approx(one["val/loss"], rel=1e-4)
