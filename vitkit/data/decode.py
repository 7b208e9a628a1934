"""Reading images: in full (``read_image``), or as encoded bytes first and pixels later, at the smallest size the
transform needs.

A random-resized crop of a 640×480 photo to 224×224 throws most of the decoded pixels away; libjpeg-turbo can
decode a JPEG at a reduced DCT scale ``M/8``, skipping most of the inverse DCT, colour conversion and copying (not
the entropy decoding, which on photos is most of the cost: measured 0.81 ms of the 1.16 ms of a 640×480 full decode
remain at 1/8 scale). The file is therefore opened in two steps:

- ``read_encoded(path)`` / ``encoded_image(data, name)``: the bytes and the header (size, mode, EXIF orientation),
  parsed by PIL under ``read_image``'s rules (decompression-bomb limit included), so the transform can choose its
  crop from the full-size geometry before a pixel is decoded;
- ``decode(encoded, min_height, min_width)``: the pixels as ``uint8 (h, w, 3)`` RGB at the smallest DCT scale whose
  output is at least ``min_height × min_width`` (``simplejpeg``: libjpeg-turbo's own scaling straight into numpy),
  with the scale used; ``region`` maps a full-size box onto that reduced grid.

Only plain JPEGs take that path: baseline or progressive, RGB (YCbCr) or grey, no EXIF rotation. Everything else
(PNG, WebP, CMYK JPEGs, rotated photos, ...) is decoded in full by ``read_image`` and reported at scale 1, so the
callers need no special case. simplejpeg decodes with libjpeg-turbo's accurate integer IDCT and smooth chroma
upsampling, as PIL does: a full-scale decode gives PIL's pixels (tested), in half PIL's time. A truncated or corrupt
JPEG is a ``DataError`` naming the file (simplejpeg's strict mode), as with PIL.

``read_image``: one file as RGB ``uint8 (H, W, 3)``: EXIF orientation applied, grey replicated, 16-bit scaled to 8
bits, transparency composited over white, palette and CMYK converted; anything PIL cannot decode is a ``DataError``
naming the file (``vitkit.data.imagefolder`` documents the rules).
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from vitkit.data.errors import DataError

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_EXIF_ORIENTATION = 0x0112
_REDUCIBLE_MODES = ("RGB", "L")  # what libjpeg-turbo turns into RGB itself (YCbCr or grey JPEGs)


@dataclass(frozen=True)
class EncodedImage:
    """An image file's bytes and what its header says; ``height × width`` is the size after EXIF orientation;
    ``path`` names it in messages (a file, or a record of a shard folder)."""

    path: str
    data: bytes
    height: int
    width: int
    reducible: bool  # a plain JPEG that libjpeg-turbo can decode at a reduced DCT scale


def read_encoded(path: str) -> EncodedImage:
    """The file's bytes and header; ``DataError`` naming the file when it cannot be read or parsed."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"cannot read image {path}: {type(e).__name__}: {e}", "replace or delete this file") from e
    return encoded_image(data, path)


def encoded_image(data: bytes, name: str) -> EncodedImage:
    """An image's bytes (of a file, or a shard record called ``name`` in messages) with its parsed header."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # as read_image
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                orientation = img.getexif().get(_EXIF_ORIENTATION, 1) if "exif" in img.info else 1
                reducible = img.format == "JPEG" and img.mode in _REDUCIBLE_MODES and orientation == 1
    except Exception as e:  # whatever PIL raises on a malformed header is a problem with that file
        raise DataError(f"cannot read image {name}: {describe_failure(e)}", "replace or delete this file") from e
    if orientation in (5, 6, 7, 8):  # transposed by read_image: the transform must plan on the turned size
        height, width = width, height
    return EncodedImage(name, data, height, width, reducible)


def decode(image: EncodedImage, min_height: int = 0, min_width: int = 0) -> tuple[np.ndarray, float]:
    """``(pixels uint8 (h, w, 3), scale)``: the image decoded at the smallest DCT scale ``M/8`` (``M`` = 1, 2, 4,
    8) with ``h ≥ min_height`` and ``w ≥ min_width`` (a minimum above the full size: scale 1); ``h = ceil(H ·
    scale)``, ``w = ceil(W · scale)``. Not a plain JPEG: in full by PIL (scale 1). A plain JPEG at scale 1 is still
    decoded by libjpeg-turbo directly, faster than through PIL, which copies every row into its own 4-byte layout
    and back."""
    if not image.reducible:
        return _decode_with_pil(image), 1.0
    import simplejpeg

    m = _power_of_two_eighths(min_height / image.height, min_width / image.width)
    try:  # the minimum set to that scale's own size, so that libjpeg-turbo picks exactly it
        pixels = simplejpeg.decode_jpeg(image.data, colorspace="RGB", min_height=math.ceil(image.height * m / 8),
                                        min_width=math.ceil(image.width * m / 8))
    except ValueError as e:  # libjpeg-turbo's message: "Premature end of JPEG file", "Corrupt JPEG data", ...
        raise DataError(f"cannot read image {image.path}: {e}", "replace or delete this file") from e
    return pixels, _scale_of(pixels.shape[:2], image.height, image.width)


def region(box: tuple[float, float, float, float], scale: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A full-size box ``(x1, y1, x2, y2)`` on the grid of an image decoded at ``scale`` (of ``shape``): each edge
    to the nearest reduced pixel boundary, so the box moves by at most half a reduced pixel."""
    h, w = shape[:2]
    x1, y1, x2, y2 = (round(v * scale) for v in box)
    x1, y1 = min(max(x1, 0), w - 1), min(max(y1, 0), h - 1)
    return x1, y1, min(max(x2, x1 + 1), w), min(max(y2, y1 + 1), h)


def _power_of_two_eighths(*fractions: float) -> int:
    """The smallest ``M`` of 1, 2, 4, 8 with ``M/8`` at least every fraction. Only these: libjpeg-turbo has SIMD
    (or trivially cheap) inverse DCTs for the 8×8, 4×4, 2×2 and 1×1 outputs; the other ``M/8`` scales run a plain-C
    IDCT that is slower than a full decode (measured: 6/8 takes 1.16× the time of 8/8)."""
    need = max(fractions)
    return next((m for m in (1, 2, 4) if m / 8 >= need), 8)


def _scale_of(shape: tuple[int, int], height: int, width: int) -> float:
    """The DCT scale ``M/8`` libjpeg-turbo used to turn ``height × width`` into ``shape`` (sizes rounded up)."""
    for m in range(1, 9):
        if (math.ceil(height * m / 8), math.ceil(width * m / 8)) == tuple(shape):
            return m / 8
    raise AssertionError(f"decoded shape {shape} is no DCT scale of {height}×{width}")


def decode_full(image: EncodedImage) -> np.ndarray:
    """All of the image's pixels, as ``vitkit.data.imagefolder.read_image`` gives them."""
    return decode(image, image.height, image.width)[0]


def _decode_with_pil(image: EncodedImage) -> np.ndarray:
    return read_image(io.BytesIO(image.data), name=image.path)


def read_image(path: str | Path | BinaryIO, *, name: str | None = None) -> np.ndarray:
    """Read one image file (or a file object of its bytes, called ``name`` in messages) as RGB ``uint8 (H, W, 3)``;
    raises ``DataError`` naming the file if it cannot."""
    from PIL import Image, ImageOps

    name = name or str(path)
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that, then decodes the whole image anyway
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                if "exif" in img.info or img.format in ("TIFF", "MPO"):  # skip the EXIF parse when there is none
                    img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except Exception as e:  # whatever PIL raises on a malformed file is a problem with that file
        raise DataError(f"cannot read image {name}: {describe_failure(e)}", "replace or delete this file") from e


def describe_failure(error: Exception) -> str:
    from PIL import Image

    if isinstance(error, Image.DecompressionBombWarning | Image.DecompressionBombError):
        return (f"{error} (over PIL's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS} pixels: a file this large "
                f"is more often a corrupt or hostile header than a photo; resize it if it is genuine)")
    if isinstance(error, Image.UnidentifiedImageError):
        return f"not an image PIL recognises ({error})"
    return f"{type(error).__name__}: {error}"


def _to_rgb(img) -> np.ndarray:
    from PIL import Image

    if img.mode == "RGB":
        return np.asarray(img)
    if img.mode in _SIXTEEN_BIT_MODES:  # 16-bit grayscale: 0..65535 → 0..255
        gray = np.asarray(img, dtype=np.float32) / 257.0
        gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)  # (H, W, 3)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(img.convert("RGB"))
