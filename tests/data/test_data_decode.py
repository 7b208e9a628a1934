"""Reduced-size JPEG decoding (``vitkit.data.decode``, ``vitkit.data.decoding_pipeline``): the same crops as the
plain albumentations pipeline, pixels within JPEG tolerance of a full decode, full decodes where no reduced scale
fits, and the image-folder datamodule on the fast path."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import ks_2samp

from vitkit.data import DataError, VisionDataModule
from vitkit.data.decode import EncodedImage, decode, read_encoded
from vitkit.data.decoding_pipeline import DecodingPipeline
from vitkit.data.imagefolder import read_image
from vitkit.data.preprocessing import Preprocessing, normalise
from vitkit.data.sampling import SampleKey
from vitkit.data.transforms import build_transforms, seed_transform


def _photo(width: int, height: int) -> np.ndarray:
    """A real photo (scikit-learn's china.jpg) resized to ``width × height``, with mild grain."""
    from sklearn.datasets import load_sample_image

    img = Image.fromarray(load_sample_image("china.jpg")).resize((width, height), Image.BICUBIC)
    noise = np.random.default_rng(0).normal(0, 2, (height, width, 1))
    return np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8)  # (H, W, 3)


def _jpeg(path, pixels: np.ndarray, quality: int = 90, **kwargs) -> str:
    Image.fromarray(pixels).save(path, quality=quality, **kwargs)
    return str(path)


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


@pytest.mark.parametrize(("width", "height", "size", "scale"), [(1280, 960, 224, 0.5), (640, 480, 64, 0.25)])
def test_eval_pixels_within_jpeg_tolerance_of_a_full_decode(tmp_path, width, height, size, scale):
    """Tolerance: a mean difference of at most 2.5 and a 99th percentile of at most 16 levels of 255 from a full
    decode through the same resize and centre crop. A reduced DCT scale low-passes in the DCT domain where the full
    path averages pixel areas (INTER_AREA): two anti-aliasing filters of about the same width, which differ at edges.
    Measured on this photo at JPEG quality 75–95: mean 1.1 (scale 1/2) to 2.2 (1/4 and 1/8), 99th percentile 8 to
    15 — the order of JPEG's own error at full resolution (mean 1.4 to 5 levels at those qualities). The geometry
    is exact: the difference is far below that of a one-pixel shift."""
    original = _photo(width, height)
    path = _jpeg(tmp_path / "photo.jpg", original)
    geometry = Preprocessing("classification", size, "center_crop", 3, (0.5,) * 3, (1.0,) * 3).transform()
    pipeline = DecodingPipeline(geometry)
    encoded = read_encoded(path)
    assert decode(encoded, round(size / 0.875) + 1, 1)[1] == scale  # the reduced path is taken
    fast = pipeline(image=encoded)["image"].astype(np.float32)
    full = geometry(image=read_image(path))["image"].astype(np.float32)
    assert fast.shape == full.shape == (size, size, 3)
    difference = np.abs(fast - full)
    assert difference.mean() <= 2.5 and np.percentile(difference, 99) <= 16, difference.mean()
    shifted = np.abs(full[1:, 1:] - full[:-1, :-1]).mean()
    assert difference.mean() < shifted / 2, (difference.mean(), shifted)


def test_full_scale_decode_gives_pils_pixels(tmp_path):
    rgb = _photo(160, 120)
    grey = rgb[..., 0]
    for name, pixels in (("rgb.jpg", rgb), ("grey.jpg", grey)):
        path = _jpeg(tmp_path / name, pixels)
        decoded, scale = decode(read_encoded(path), 10**6, 10**6)
        assert scale == 1.0 and np.array_equal(decoded, read_image(path)), name


def test_not_reducible_images_are_decoded_in_full(tmp_path):
    pixels = _photo(40, 30)
    png = tmp_path / "photo.png"
    Image.fromarray(pixels).save(png)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: read_image turns it, so the header size is the turned one
    rotated = _jpeg(tmp_path / "rotated.jpg", pixels, exif=exif.tobytes())
    for path, shape in ((str(png), (30, 40, 3)), (rotated, (40, 30, 3))):
        encoded = read_encoded(path)
        assert not encoded.reducible and (encoded.height, encoded.width) == shape[:2]
        decoded, scale = decode(encoded, 1, 1)
        assert scale == 1.0 and np.array_equal(decoded, read_image(path))


def test_crop_smaller_than_any_reduced_scale_decodes_in_full(tmp_path):
    path = _jpeg(tmp_path / "small.jpg", _photo(200, 150))
    train, _ = build_transforms("imagenet", "imagenet", 224, seed=0)
    pipeline = DecodingPipeline(train)
    seed_transform(pipeline, 0)
    assert pipeline(image=read_encoded(path))["image"].shape == (224, 224, 3)
    assert decode(read_encoded(path), 100, 100)[1] == 1.0  # 100 / 150 > 1/2: no reduced scale covers it


def test_truncated_jpeg_is_a_data_error_naming_the_file(tmp_path):
    data = _encoded_bytes(_photo(64, 48))
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.jpg"):
        decode(read_encoded(str(path)), 8, 8)


def _encoded_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_training_crops_are_the_plain_pipelines_crops(tmp_path):
    """Seeded alike, the decoding pipeline takes the crop and flip the plain pipeline takes: the outputs differ
    only by the decode (here at scales down to 1/8) and by the box's rounding onto the reduced grid (at most half a
    reduced pixel, i.e. half an output pixel): a few levels, while the next seed's crop differs by tens."""
    path = _jpeg(tmp_path / "photo.jpg", _photo(960, 720))
    train, _ = build_transforms("imagenet", "imagenet", 96, seed=0)
    pipeline, pixels, encoded = DecodingPipeline(train), read_image(path), read_encoded(path)
    differences, others = [], []
    for seed in range(40):
        seed_transform(train, [0, 0, seed])
        plain = train(image=pixels)["image"]
        seed_transform(pipeline, [0, 0, seed])
        differences.append(_mean_abs(pipeline(image=encoded)["image"], plain))
        seed_transform(pipeline, [0, 0, seed + 1])
        others.append(_mean_abs(pipeline(image=encoded)["image"], plain))
    assert max(differences) < 10.0 < 30.0 < np.median(others), (max(differences), np.median(others))


def test_crop_parameter_statistics_match_torchvision():
    """The crop boxes the decoding pipeline draws (on the header size, before decoding) against torchvision's
    ``RandomResizedCrop.get_params`` (scale 0.08–1, ratio 3/4–4/3): area fraction, log aspect ratio and the centre
    position, 3,000 draws each, two-sample Kolmogorov–Smirnov."""
    from torchvision.transforms import RandomResizedCrop

    train, _ = build_transforms("imagenet", "imagenet", 224, seed=0)
    pipeline = DecodingPipeline(train)
    seed_transform(pipeline, 1)
    height, width = 480, 640
    ours = np.array([pipeline.draw_crop(height, width) for _ in range(3000)], dtype=np.float64)  # (n, 4) x1 y1 x2 y2
    torch.manual_seed(0)
    image = torch.zeros(3, height, width)
    theirs = []
    for _ in range(3000):
        i, j, h, w = RandomResizedCrop.get_params(image, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
        theirs.append((j, i, j + w, i + h))
    theirs = np.array(theirs, dtype=np.float64)

    def statistics(boxes: np.ndarray) -> dict[str, np.ndarray]:
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        return {"area": w * h / (width * height), "log_ratio": np.log(w / h),
                "cx": (boxes[:, 0] + boxes[:, 2]) / (2 * width), "cy": (boxes[:, 1] + boxes[:, 3]) / (2 * height)}

    a, b = statistics(ours), statistics(theirs)
    for key in a:
        assert ks_2samp(a[key], b[key]).pvalue > 1e-3, key


def test_imagefolder_module_trains_on_the_fast_path(tmp_path):
    """The issue's keywords: the train loader decodes encoded files itself and yields the documented batches."""
    for i in range(40):
        folder = tmp_path / "train" / f"c{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        _jpeg(folder / f"{i}.jpg", _photo(64 + i, 48))
    dm = VisionDataModule(dataset="imagefolder", root=str(tmp_path), image_size=224, batch_size=32, num_workers=2,
                          augment="imagenet", val_split=0.05)
    train = dm.dataset("train")
    assert isinstance(train.transform, DecodingPipeline)
    assert isinstance(train.samples.dataset.encoded(0)["image"], EncodedImage)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (32, 3, 224, 224)
    assert batch["label"].shape == (32,)
    assert torch.equal(dm.on_after_batch_transfer(batch, 0)["image"], batch["image"])  # normalised once only
    # Under a Trainer (normalise="auto") or asked: 8-bit out of the workers, normalised on the device to the same
    # numbers as the one preprocessing (vitkit predict, export) gives each image
    dm.normalise = "device"
    pixels = next(iter(dm.train_dataloader()))["image"]
    assert pixels.dtype == torch.uint8 and pixels.shape == (32, 3, 224, 224)
    model_input = dm.on_after_batch_transfer({"image": pixels}, 0)["image"]
    assert torch.equal(model_input, batch["image"])
    for i in (0, 31):
        assert torch.equal(model_input[i], normalise(pixels[i].permute(1, 2, 0).numpy(), dm.info.mean, dm.info.std))
    again = train[SampleKey(3, 0)]["image"]
    assert again.dtype == torch.uint8 and torch.equal(again, train[SampleKey(3, 0)]["image"])
