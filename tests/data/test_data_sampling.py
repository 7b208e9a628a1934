"""The training sampler and loader (``vitkit.data.sampling``): two shards together visit, step by step, what one
process visits with twice the batch; augmentation is a function of (seed, epoch, index); a saved position resumes
the same order; the global batch is shared out over devices."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from vitkit.data import DataError, VisionDataModule
from vitkit.data.sampling import ResumableLoader, ResumableSampler, per_device_batch_size


def _module(**kwargs) -> VisionDataModule:
    return VisionDataModule("digits", batch_size=8, num_workers=0, **kwargs)


def _loader(dm: VisionDataModule, batch_size: int, replicas: int = 1, rank: int = 0, workers: int = 0):
    data = dm.dataset("train")
    sampler = ResumableSampler(len(data), seed=dm.seed, num_replicas=replicas, rank=rank)
    return ResumableLoader(data, sampler=sampler, batch_size=batch_size, drop_last=True, num_workers=workers,
                           collate_fn=dm.task_format.collate)


def test_two_shards_step_through_the_images_of_one_process():
    dm = _module(augment="digits")  # augmentation on: the same image must also be augmented the same way
    one = _loader(dm, 16)
    ranks = [_loader(dm, 8, replicas=2, rank=r) for r in (0, 1)]
    for epoch in (0, 1):
        for loader in (one, *ranks):
            loader.sampler.set_epoch(epoch)
        for step, (big, *small) in enumerate(zip(one, *ranks, strict=False)):
            if step == 3:
                break
            # process r takes positions r, r + 2, ... of the epoch's order: interleave the two halves back
            both = torch.stack([small[0]["image"], small[1]["image"]], dim=1).flatten(0, 1)  # (16, C, H, W)
            labels = torch.stack([small[0]["label"], small[1]["label"]], dim=1).flatten()
            assert torch.equal(both, big["image"]) and torch.equal(labels, big["label"]), (epoch, step)
    assert not torch.equal(next(iter(_loader(dm, 16)))["image"], big["image"])  # epochs differ


def test_augmentation_does_not_depend_on_the_worker():
    dm = _module(augment="digits")
    in_process = next(iter(_loader(dm, 16)))["image"]
    in_worker = next(iter(_loader(dm, 16, workers=1)))["image"]
    assert torch.equal(in_process, in_worker)


def test_a_saved_position_resumes_the_same_order(caplog):
    dm = _module(augment="digits")
    whole = _loader(dm, 8)
    whole.sampler.set_epoch(2)
    expected = [b["label"] for b in whole]
    cut = _loader(dm, 8)
    cut.sampler.set_epoch(2)
    batches = iter(cut)
    seen = [next(batches)["label"] for _ in range(5)]
    state = cut.state_dict()
    assert state["epoch"] == 2 and state["batches"] == 5
    resumed = _loader(dm, 8)
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)  # Lightning sets the epoch it resumes in
    rest = [b["label"] for b in resumed]
    assert len(seen) + len(rest) == len(expected)
    assert all(torch.equal(a, b) for a, b in zip(seen + rest, expected, strict=True))
    assert resumed.state_dict()["epoch"] == 3 and resumed.state_dict()["batches"] == 0  # a finished epoch

    other = _loader(dm, 4)
    with caplog.at_level(logging.WARNING):
        other.load_state_dict(state)
    assert "saved with batch size 8 on 1 processes" in caplog.text


def test_a_position_from_an_earlier_epoch_is_dropped_at_the_next():
    sampler = ResumableSampler(10, seed=0)
    sampler.set_epoch(1)
    sampler.skip_next(4)
    sampler.set_epoch(2)
    assert [k.index for k in sampler] == np.random.default_rng([0, 2]).permutation(10).tolist()


@pytest.mark.parametrize(("world", "accumulate", "expected"), [(1, 1, 64), (2, 1, 32), (4, 2, 8)])
def test_global_batch_is_shared_out(world, accumulate, expected):
    assert per_device_batch_size(64, world, accumulate) == expected


def test_a_global_batch_that_does_not_divide_is_refused():
    with pytest.raises(DataError, match="global_batch_size=64 cannot be shared out evenly over 3 devices"):
        per_device_batch_size(64, 3)


def test_overfit_batches_trains_on_the_same_first_batches(tmp_path):
    # Lightning rebuilds the training loader around a SequentialSampler for overfit_batches (it used to crash here)
    from pathlib import Path

    from vitkit.trainer import run_lightning_cli

    config = Path(__file__).parents[2] / "configs" / "vit" / "digits.yaml"
    cli = run_lightning_cli(["fit", "-c", str(config), "--trainer.overfit_batches", "2", "--trainer.max_epochs", "2",
                             "--trainer.enable_progress_bar", "false", f"--trainer.default_root_dir={tmp_path}"])
    assert cli.trainer.global_step == 4
    loader = cli.trainer.train_dataloader
    assert isinstance(loader, ResumableLoader) and not loader.resumable and loader.state_dict() == {}
    first, again = ([b["label"] for b in loader] for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    expected = [int(loader.dataset[i]["label"]) for i in range(len(first[0]))]
    assert first[0].tolist() == expected  # unshuffled: the split's first images, in order
