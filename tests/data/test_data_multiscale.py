"""RT-DETR's training schedule in the datamodule: multi-scale batches (vitkit.data.multiscale) and the last epochs
without augmentation (no_aug_epochs), with persistent workers and through a resumed run."""

import lightning as L
import pytest
import torch

from vitkit.data import VisionDataModule
from vitkit.data.errors import DataError
from vitkit.data.multiscale import BatchScales, draw_size, rescale_batch
from vitkit.data.sampling import ResumableLoader, ResumableSampler
from vitkit.errors import ConfigError

SIZES = [32, 64, 96]


def test_sizes_come_from_the_list_reproducibly_per_optimiser_step():
    drawn = [draw_size(SIZES, seed=0, epoch=e, step=s) for e in range(3) for s in range(20)]
    assert set(drawn) == set(SIZES)  # every size is used, no other
    assert drawn == [draw_size(SIZES, seed=0, epoch=e, step=s) for e in range(3) for s in range(20)]
    assert drawn != [draw_size(SIZES, seed=1, epoch=e, step=s) for e in range(3) for s in range(20)]
    tag = BatchScales(SIZES, seed=0, accumulate=2, plain_from_epoch=2)
    sizes = [tag({}, 1, i)["scale"] for i in range(8)]
    assert sizes[0::2] == sizes[1::2] == [draw_size(SIZES, seed=0, epoch=1, step=s) for s in range(4)]
    assert "scale" not in tag({}, 2, 0)  # the no-augmentation epochs train at the evaluation size
    # the two processes' shares of each global batch get the same size
    keys = [ResumableLoader(Keyed(), sampler=ResumableSampler(16, seed=0, num_replicas=2, rank=r), batch_size=2,
                            annotate=BatchScales(SIZES, seed=0), collate_fn=lambda s: {}) for r in (0, 1)]
    assert [b["scale"] for b in keys[0]] == [b["scale"] for b in keys[1]] == [
        draw_size(SIZES, seed=0, epoch=0, step=i) for i in range(4)]


def test_rescaled_batch_keeps_boxes_and_masks_consistent():
    """Two images of different sizes, a bright box in each: after the resize, the box's normalised coordinates still
    frame the bright pixels, and the pixel mask covers exactly the resized image."""
    boxes = [torch.tensor([[0.5, 0.25, 0.5, 0.25]]), torch.tensor([[0.25, 0.5, 0.25, 0.5]])]
    images = torch.zeros(2, 3, 48, 64)
    mask = torch.zeros(2, 48, 64, dtype=torch.bool)
    for i, (h, w) in enumerate([(48, 64), (32, 40)]):
        mask[i, :h, :w] = True
        cx, cy, bw, bh = boxes[i][0].tolist()
        top, bottom, left, right = (round(v) for v in ((cy - bh / 2) * h, (cy + bh / 2) * h, (cx - bw / 2) * w,
                                                       (cx + bw / 2) * w))
        images[i, :, top:bottom, left:right] = 1
    targets = [{"boxes": b, "size": torch.tensor(s)} for b, s in zip(boxes, [(48, 64), (32, 40)], strict=True)]
    out = rescale_batch({"image": images, "pixel_mask": mask, "targets": targets}, 96, 64)  # factor 1.5
    assert out["image"].shape == (2, 3, 72, 96) and out["pixel_mask"].shape == (2, 72, 96)
    for i, (h, w) in enumerate([(72, 96), (48, 60)]):
        assert out["pixel_mask"][i].sum() == h * w and out["pixel_mask"][i, :h, :w].all()
        assert out["targets"][i]["size"].tolist() == [h, w] and out["targets"][i]["boxes"] is boxes[i]
        cx, cy, bw, bh = boxes[i][0].tolist()
        bright = out["image"][i, 0] > 0.5
        rows, cols = bright.nonzero().unbind(1)
        assert abs(rows.min() - (cy - bh / 2) * h) <= 1 and abs(rows.max() + 1 - (cy + bh / 2) * h) <= 1
        assert abs(cols.min() - (cx - bw / 2) * w) <= 1 and abs(cols.max() + 1 - (cx + bw / 2) * w) <= 1


class Keyed:
    """A data set of 16 empty samples indexed by the sampler's keys."""

    def __len__(self) -> int:
        return 16

    def __getitem__(self, key) -> dict:
        return {}


class Recorder(L.LightningModule):
    """Records the (epoch, batch index, image height and width) of every training batch it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, int, tuple[int, int]]] = []

    def training_step(self, batch, batch_idx):
        assert batch["pixel_mask"].shape[-2:] == batch["image"].shape[-2:] and "scale" not in batch
        self.seen.append((self.current_epoch, batch_idx, tuple(batch["image"].shape[-2:])))
        return (self.w * batch["image"].mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class StopAfter(L.Callback):
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.should_stop = trainer.current_epoch + 1 >= self.epochs


def _fit(root, tmp_path, max_epochs, ckpt_path=None, stop_after=None, **data):
    dm = VisionDataModule("digits_detection", root=str(root), task="detection", image_size=64, batch_size=4, **data)
    module = Recorder()
    trainer = L.Trainer(max_epochs=max_epochs, limit_train_batches=3, limit_val_batches=0, accelerator="cpu",
                        default_root_dir=tmp_path, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[StopAfter(stop_after)] if stop_after else None)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return module.seen


def test_multiscale_batches_follow_the_seed_and_stop_in_the_last_epochs(digits_detection_root, tmp_path):
    seen = _fit(digits_detection_root, tmp_path, 3, augment="none", multiscale_sizes=SIZES, no_aug_epochs=1)
    # square canvases: the shorter side is the whole batch's side
    assert [hw for e, _, hw in seen if e < 2] == [(s, s) for e in range(2) for s in
                                                  (draw_size(SIZES, seed=0, epoch=e, step=i) for i in range(3))]
    assert [hw for e, _, hw in seen if e == 2] == [(64, 64)] * 3
    dm = VisionDataModule("digits_detection", root=str(digits_detection_root), task="detection", image_size=64,
                          batch_size=4, augment="none", multiscale_sizes=SIZES)
    loader = dm.train_dataloader()
    loader.load_state_dict({**loader.state_dict(), "epoch": 1, "batches": 2})  # a run resumed within epoch 1
    assert next(iter(loader))["scale"] == draw_size(SIZES, seed=0, epoch=1, step=2)


def test_no_aug_epochs_switch_with_persistent_workers_and_resume(digits_detection_root, tmp_path):
    """detr_noflip augmentation rescales and crops (other sizes than 64); the evaluation transform gives 64 × 64.
    Four epochs with the last two without augmentation, in one run with persistent workers, and in a run stopped
    after two epochs then resumed."""
    data = dict(augment="detr_noflip", no_aug_epochs=2, num_workers=1, persistent_workers=True)
    whole = _fit(digits_detection_root, tmp_path / "whole", 4, **data)
    assert any(hw != (64, 64) for e, _, hw in whole if e == 1)
    assert all(hw == (64, 64) for e, _, hw in whole if e >= 2) and len(whole) == 12
    first = _fit(digits_detection_root, tmp_path, 4, stop_after=2, **data)
    assert [e for e, _, _ in first] == [0, 0, 0, 1, 1, 1]
    assert any(hw != (64, 64) for _, _, hw in first)  # augmented
    (ckpt,) = (tmp_path / "checkpoints").glob("*.ckpt")
    resumed = _fit(digits_detection_root, tmp_path, 4, ckpt_path=str(ckpt), **data)
    assert [e for e, _, _ in resumed] == [2, 2, 2, 3, 3, 3]
    assert all(hw == (64, 64) for _, _, hw in resumed)


def test_bad_options_are_one_line_errors():
    with pytest.raises(DataError, match="multiscale_sizes"):
        VisionDataModule("digits_detection", task="detection", multiscale_sizes=[])
    with pytest.raises(DataError, match="not task='classification'"):
        VisionDataModule("digits", multiscale_sizes=[32])
    with pytest.raises(DataError, match="no_aug_epochs=-1"):
        VisionDataModule("digits", no_aug_epochs=-1)
    from tests.tasks.test_rtdetr_task import make_task

    task = make_task()
    trainer = L.Trainer(accelerator="cpu", logger=False)
    trainer.datamodule = type("D", (), {"multiscale_sizes": [480, 500]})()
    task.trainer = trainer
    with pytest.raises(ConfigError, match=r"multiples of 32 .* not \[500\]"):
        task.setup("fit")
