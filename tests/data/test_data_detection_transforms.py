"""Detection presets: boxes move with the pixels through flips, crops and resizes; the paper's sizes at S = 800;
seeding (one generator per pipeline, so steps do not draw the same numbers)."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from vitkit.data.formats import FormattedDataset
from vitkit.data.resize_crop import RandomSizeCrop, ShorterSideResize
from vitkit.data.transforms import build_detection_transforms, seed_transform

BOX = [44, 10, 24, 30]  # [x, y, w, h] in a 60×80 image, right of centre so that a flip moves it


def _image() -> np.ndarray:
    """Black, with the box: its left half white, its right half light grey (to tell a flipped box from the original)."""
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    x, y, w, h = BOX
    image[y:y + h, x:x + w // 2] = 255
    image[y:y + h, x + w // 2:x + w] = 200
    return image


def _ink_box(image: np.ndarray) -> list[int] | None:
    ys, xs = np.nonzero(image[..., 0] > 100)  # edges blurred by resizing: half the grey, 40% of the white
    if len(xs) == 0:
        return None
    return [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]


@pytest.mark.parametrize("preset", ["detr", "detr_noflip", "none"])
def test_boxes_follow_the_pixels(preset):
    train, _ = build_detection_transforms(preset, "detr", 50, seed=0)
    flips = crops = 0
    for _ in range(60):
        out = train(image=_image(), bboxes=np.array([BOX], dtype=np.float32), labels=np.array([3]))
        image, boxes = out["image"], np.asarray(out["bboxes"]).reshape(-1, 4)
        h, w = image.shape[:2]
        assert min(h, w) <= 50 and max(h, w) <= round(50 * 1333 / 800)
        crops += abs(w / h - 80 / 60) > 0.05
        ink = _ink_box(image)
        if len(boxes) == 0:  # cropped away: no trace of the box may remain
            assert ink is None or ink[2] * ink[3] <= 2
            continue
        assert list(out["labels"]) == [3]
        x, y, bw, bh = boxes[0]
        assert ink is not None, boxes[0]
        # resampling (down, crop, up) blurs edges by a pixel or two; the centre stays put, the size nearly so
        ix, iy, iw, ih = ink
        assert abs(x + bw / 2 - ix - iw / 2) <= 1.0 and abs(y + bh / 2 - iy - ih / 2) <= 1.0, (boxes[0], ink)
        assert abs(bw - iw) <= max(2.0, 0.1 * iw) and abs(bh - ih) <= max(2.0, 0.1 * ih), (boxes[0], ink)
        row = image[int(y + bh / 2), :, 0]  # the box's middle row: white part left of the grey part unless flipped
        white, grey = np.nonzero(row > 235)[0], np.nonzero((row > 185) & (row < 215))[0]
        if len(white) >= 2 and len(grey) >= 2:
            flips += white.mean() > grey.mean()
    if preset == "detr":
        assert flips > 10 and crops > 10  # both happen, about half the time each
    else:
        assert flips == 0
    if preset == "none":
        assert crops == 0


def test_detr_preset_has_the_papers_sizes_at_800():
    train, evaluation = build_detection_transforms("detr", "detr", 800)
    flip, choice = train.transforms
    assert isinstance(flip, A.HorizontalFlip) and flip.p == 0.5
    plain, cropped = choice.transforms
    multi_scale = plain.transforms[0]
    assert multi_scale.sizes == tuple(range(480, 801, 32)) and multi_scale.longest == 1333
    first, crop, last = cropped.transforms
    assert first.sizes == (400, 500, 600) and isinstance(crop, RandomSizeCrop)
    assert (crop.min_size, crop.max_size) == (384, 600) and last.sizes == multi_scale.sizes
    resize = evaluation.transforms[0]
    assert isinstance(resize, ShorterSideResize) and resize.sizes == (800,) and resize.longest == 1333
    out = evaluation(image=np.zeros((480, 640, 3), np.uint8), bboxes=np.zeros((0, 4)), labels=np.zeros(0))
    assert out["image"].shape == (800, 1067, 3)
    out = evaluation(image=np.zeros((100, 400, 3), np.uint8), bboxes=np.zeros((0, 4)), labels=np.zeros(0))
    assert out["image"].shape == (333, 1333, 3)  # longer side capped


def test_seeded_and_one_generator_per_pipeline():
    def draws(pipeline, n=64):
        image = np.arange(4, dtype=np.uint8).reshape(2, 2, 1)
        return [tuple(pipeline(image=image)["image"].ravel()) for _ in range(n)]

    pipeline = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])
    seed_transform(pipeline, 1)
    first = draws(pipeline)
    assert len(set(first)) == 4  # all four flip combinations: the two steps do not replay each other's numbers
    FormattedDataset([], pipeline, None).reseed(1)  # what each DataLoader worker does
    assert draws(pipeline) == first
    seed_transform(pipeline, 2)
    assert draws(pipeline) != first


def test_detection_pipelines_are_seeded():
    def run(seed):
        train, _ = build_detection_transforms("detr", "detr", 50, seed=seed)
        return [train(image=_image(), bboxes=np.array([BOX], np.float32), labels=[0])["image"].shape
                for _ in range(10)]

    assert run(0) == run(0) and run(0) != run(1)
