"""Augmentation presets named by intent (albumentations), and the evaluation transform that goes with each.

Every preset maps a ``uint8 (H, W, C)`` image of any size to a ``uint8 (S, S, C)`` image with ``S = image_size``.
The presets are geometry only: normalisation (or none, for generation) is the task format's business
(``vitkit.data.formats``), done on the tensor, which is cheaper than an albumentations step.

========== ======================================================================= ==============================
preset     training                                                                evaluation
========== ======================================================================= ==============================
none       = evaluation (no randomness)                                             the dataset's own
cifar      resize to S, zero-pad S/8 (4 px at 32) each side, random S×S crop, flip  resize to S
imagenet   random-resized crop (scale 0.08–1, ratio 3/4–4/3) to S, flip             shorter side to S/0.875, centre crop
digits     resize to S, small affine: ±10% shift, ±10% scale, ±10° rotation; no    resize to S
           flip, since a mirrored digit is another symbol (or none)
========== ======================================================================= ==============================

Evaluation follows the training preset because each one trains at a framing that the evaluation must match:
random-resized crops see objects larger than the full frame does, so ImageNet evaluation centre-crops; pad-crop and
affine training see the whole frame, so their evaluation does too. ``none`` takes the dataset's default preset's
evaluation (``imagenet``'s for image folders, a plain resize for the fixed-size sets).

Two switches from the training recipe (timm's, DeiT's), off by default, follow the training preset's geometry:
``rand_augment`` (a timm config string such as ``"rand-m9-mstd0.5-inc1"``: timm's RandAugment, the reference op set
and magnitude schedule, which albumentations does not provide; it runs on a PIL view of the uint8 image) and
``random_erasing`` (probability of erasing one rectangle, Zhong et al. 2020, with per-pixel random fill: timm's
"pixel" mode, done by albumentations' ``Erasing`` in the same uint8 pipeline, last as in timm).

Detection presets (``build_detection_transforms``) keep the aspect ratio and move the boxes with the pixels
(``A.BboxParams``, COCO ``[x, y, w, h]`` pixel boxes in and out). ``S = image_size`` is the shorter side at
evaluation; the training scales are fractions of it, so ``S = 800`` gives the paper's numbers exactly (Carion et al.
2020, §4 / appendix A.4) and a small ``S`` (96 for the digits canvases) gives the same recipe scaled down:

=========== ============================================================================ ==========================
preset      training                                                                     evaluation
=========== ============================================================================ ==========================
none        = evaluation                                                                 shorter side S, longer
detr        flip; then either the shorter side to one of 0.6S, 0.64S, …, S (480–800 step  ≤ S·1333/800 (800 / 1333)
            32 at S = 800), longer ≤ S·1333/800; or (probability 0.5) the shorter side
            to 0.5S/0.625S/0.75S (400/500/600), a random crop of 0.48S–0.75S (384–600)
            per side, then that multi-scale resize
detr_noflip detr without the flip: for sets where a mirrored object is another class      as detr
            (digits, text)
=========== ============================================================================ ==========================

Each training pipeline carries its own random generator (albumentations ignores global seeds): it is seeded from
``seed`` here (``seed_transform``), and re-seeded per DataLoader worker by the datamodule so workers do not repeat
each other. ``seed_transform`` gives all the steps of a pipeline ONE shared generator: albumentations'
``Compose(seed=...)`` / ``set_random_seed`` give every step its own generator with the same seed, so every step
draws the same numbers (two flips with p=0.5 would always agree; a crop's offsets would decide the flip).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
from albumentations import ImageOnlyTransform
from albumentations import RandomResizedCrop as _AlbumentationsRandomResizedCrop

from vitkit.data.preprocessing import Preprocessing, Resize

AugmentPreset = Literal["none", "cifar", "imagenet", "digits"]
PRESETS: tuple[str, ...] = ("none", "cifar", "imagenet", "digits")
DETECTION_PRESETS: tuple[str, ...] = ("none", "detr", "detr_noflip")
# DETR's scales as fractions of the evaluation size S (the paper's pixels at S = 800)
DETR_SCALES = tuple(0.6 + 0.04 * k for k in range(11))  # 480, 512, ..., 800
DETR_CROP_RESIZE = (0.5, 0.625, 0.75)  # 400, 500, 600 before the crop
DETR_CROP_RANGE = (0.48, 0.75)  # crop sides 384..600


def resolve_augment(augment: str, dataset_default: str, valid: tuple[str, ...] = PRESETS) -> str:
    """``"auto"`` → the dataset's intent; otherwise check the name against the task's presets ``valid``."""
    from vitkit.data.errors import DataError

    if augment == "auto":
        return dataset_default
    if augment not in valid:
        raise DataError(f"unknown augment preset {augment!r}", f"use one of auto, {', '.join(valid)}")
    return augment


def seed_transform(transform, seed: int | Sequence[int] | None) -> None:
    """(Re)seed an albumentations pipeline with one generator shared by all its steps (see the module docstring);
    ``seed`` may be a sequence of integers, e.g. ``(seed, epoch, index)`` for one sample's draw."""
    if seed is not None and not isinstance(seed, int):
        sequence = np.random.SeedSequence(list(seed))
        numpy_rng, python_seed = np.random.default_rng(sequence), int(sequence.generate_state(1, np.uint64)[0])
    else:
        numpy_rng, python_seed = np.random.default_rng(seed), seed
    transform.set_random_state(numpy_rng, random.Random(python_seed))


def eval_resize(augment: str, dataset_default: str) -> Resize:
    """The evaluation geometry that goes with a training preset (see the module docstring)."""
    preset = resolve_augment(augment, dataset_default)
    return "center_crop" if (dataset_default if preset == "none" else preset) == "imagenet" else "resize"


def build_transforms(augment: str, dataset_default: str, image_size: int, *, seed: int | None = None,
                     rand_augment: str | None = None, random_erasing: float = 0.0,
                     mean: tuple[float, ...] = (0.5,)):
    """``(train, eval)`` albumentations pipelines, called as ``transform(image=uint8 (H, W, C))["image"]``; the
    evaluation one is ``Preprocessing.transform`` (``vitkit.data.preprocessing``), as prediction and export use.

    ``rand_augment`` / ``random_erasing`` add the recipe's RandAugment / random erasing to the training pipeline;
    ``mean`` (dataset mean in [0, 1]) fills what RandAugment's geometric ops uncover.
    """
    import albumentations as A

    preset = resolve_augment(augment, dataset_default)
    geometry = Preprocessing("classification", image_size, eval_resize(augment, dataset_default), len(mean), mean,
                             (1.0,) * len(mean)).transform()
    train_ops = list(geometry.transforms) if preset == "none" else _train_ops(preset, image_size)
    if rand_augment:
        train_ops.append(TimmRandAugment(rand_augment, image_size, mean))
    if random_erasing > 0:
        train_ops.append(A.Erasing(fill="random", p=random_erasing))
    train = A.Compose(train_ops)
    seed_transform(train, seed)
    return train, geometry


def build_detection_transforms(augment: str, dataset_default: str, image_size: int, *, seed: int | None = None):
    """``(train, eval)`` box-aware pipelines for evaluation size ``S = image_size``, called as
    ``transform(image=uint8 (H, W, C), bboxes=float (n, 4) [x, y, w, h] pixels, labels=(n,))``; they return the
    same keys, boxes clipped to the output image and those cropped away removed (with their labels)."""
    import albumentations as A

    from vitkit.data.resize_crop import RandomSizeCrop, ShorterSideResize

    preset = resolve_augment(augment, dataset_default, DETECTION_PRESETS)
    s = image_size
    geometry = Preprocessing.for_detection(s, (0.5,) * 3, (1.0,) * 3)
    evaluation = geometry.transform(boxes=True)
    if preset == "none":
        return geometry.transform(boxes=True), evaluation
    max_size = evaluation.transforms[0].longest
    boxes = A.BboxParams(format="coco", label_fields=["labels"], clip=True)

    def sizes(fractions) -> list[int]:
        return sorted({max(1, round(s * f)) for f in fractions})

    lo, hi = (max(1, round(s * f)) for f in DETR_CROP_RANGE)
    multi_scale = ShorterSideResize(sizes(DETR_SCALES), max_size)
    crop_then_resize = A.Sequential([ShorterSideResize(sizes(DETR_CROP_RESIZE), max_size), RandomSizeCrop(lo, hi),
                                     ShorterSideResize(sizes(DETR_SCALES), max_size)])
    ops = [] if preset == "detr_noflip" else [A.HorizontalFlip(p=0.5)]
    ops.append(A.OneOf([A.Sequential([multi_scale]), crop_then_resize], p=1.0))  # each branch with probability 0.5
    train = A.Compose(ops, bbox_params=boxes)
    seed_transform(train, seed)
    return train, evaluation


def check_recipe_augment(rand_augment: str | None, random_erasing: float) -> None:
    """Clear errors for a bad RandAugment string or erasing probability (before any data is loaded)."""
    from vitkit.data.errors import DataError

    if not 0.0 <= random_erasing <= 1.0:
        raise DataError(f"random_erasing={random_erasing} is a probability", "use a value in [0, 1] (timm: 0.25)")
    if rand_augment:
        from timm.data.auto_augment import rand_augment_transform

        try:
            rand_augment_transform(rand_augment, {})
        except (AssertionError, ValueError, KeyError, IndexError) as e:
            raise DataError(f"rand_augment={rand_augment!r} is not a timm RandAugment string ({e})",
                            "e.g. 'rand-m9-mstd0.5-inc1': magnitude 9, magnitude std 0.5, increasing ops") from e


class TimmRandAugment(ImageOnlyTransform):
    """timm's RandAugment as an albumentations step on ``uint8 (H, W, C)`` images (C = 1 or 3).

    timm draws from Python's and numpy's global generators: each call seeds them from the pipeline's own generator
    and puts their previous state back afterwards, so the draw follows the pipeline's seed (per sample, see
    ``vitkit.data.sampling``) and the process's global streams (mixup's, in the main process) are left untouched.
    """

    def __init__(self, config: str, image_size: int, mean: tuple[float, ...], p: float = 1.0) -> None:
        from timm.data.auto_augment import rand_augment_transform

        super().__init__(p=p)
        fill = tuple(round(255 * m) for m in mean)
        hparams = {"translate_const": int(image_size * 0.45), "img_mean": fill[0] if len(fill) == 1 else fill}
        self.config = config
        self.augment = rand_augment_transform(config, hparams)

    def get_params(self) -> dict[str, int]:
        return {"seed": self.py_random.getrandbits(32)}

    def apply(self, img, seed: int = 0, **params):
        from PIL import Image

        grey = img.shape[-1] == 1
        with _seeded_global_generators(seed):
            out = np.asarray(self.augment(Image.fromarray(img[..., 0] if grey else img)))
        return out[..., None] if grey else out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("config",)


class RandomResizedCrop(_AlbumentationsRandomResizedCrop):
    """albumentations' random-resized crop (its draws, unchanged) with the resize torchvision and timm train with:
    PIL's bilinear filter, widened when shrinking so that every source pixel counts (antialiasing).

    The resize runs in torch's ``uint8`` kernel for channels-last images (vectorised, one pass per axis): on a
    2-core AVX2 machine 0.13–0.20 ms per 224² output from a 300–420-pixel crop, against 0.40–0.61 ms for OpenCV's
    area interpolation of the same crop, and within a level or two of PIL's own ``Image.resize(..., BILINEAR)``
    (``tests/data/test_data_decode.py``). Images are ``uint8 (H, W, C)`` in and out, as every step here.
    """

    def apply(self, img: np.ndarray, crop_coords: tuple[int, int, int, int], **params) -> np.ndarray:
        x1, y1, x2, y2 = crop_coords
        return resize_bilinear_antialiased(img[y1:y2, x1:x2], self.size)


def resize_bilinear_antialiased(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``uint8 (h, w, C)`` → ``uint8 (H, W, C)`` with ``size = (H, W)``: PIL's antialiased bilinear resize, computed
    by torch's vectorised ``uint8`` kernel, which reads channels-last pixels (a contiguous ``(h, w, C)`` copy) and
    writes channel planes: the result is an ``(H, W, C)`` view of ``(C, H, W)`` memory, which the classification
    format turns into its ``(C, H, W)`` tensor without a copy. Enlarging on both axes (a crop of a small image) is
    plain bilinear, as PIL's filter is then, by OpenCV, three times quicker there (0.05 against 0.15 ms)."""
    import torch
    import torch.nn.functional as F

    if image.shape[:2] == tuple(size):
        return image
    if image.shape[0] <= size[0] and image.shape[1] <= size[1]:  # enlarging: no filter to widen, OpenCV is quicker
        import cv2

        out = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        return out.reshape(*size, image.shape[2])  # OpenCV drops a single channel
    # a writable contiguous copy: a crop of a wider image is strided, decoded pixels may be read-only
    pixels = torch.from_numpy(np.array(image, order="C")).permute(2, 0, 1)[None]  # (1, C, h, w) channels-last
    out = F.interpolate(pixels, size=tuple(size), mode="bilinear", antialias=True)  # (1, C, H, W)
    return out[0].permute(1, 2, 0).numpy()  # (H, W, C)


@contextlib.contextmanager
def _seeded_global_generators(seed: int) -> Iterator[None]:
    """Python's and numpy's global generators seeded with ``seed`` inside the block, restored after it."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _train_ops(preset: str, s: int) -> list:
    import albumentations as A
    import cv2

    if preset == "imagenet":
        return [RandomResizedCrop(size=(s, s), scale=(0.08, 1.0)), A.HorizontalFlip(p=0.5)]
    if preset == "cifar":
        pad = max(1, round(s / 8))
        return [A.Resize(s, s, area_for_downscale="image"),
                A.PadIfNeeded(s + 2 * pad, s + 2 * pad, border_mode=cv2.BORDER_CONSTANT, fill=0),
                A.RandomCrop(s, s), A.HorizontalFlip(p=0.5)]
    if preset == "digits":
        return [A.Resize(s, s, area_for_downscale="image"),
                A.Affine(translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), rotate=(-10, 10),
                         border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0)]
    raise AssertionError(preset)  # resolve_augment has checked the name
