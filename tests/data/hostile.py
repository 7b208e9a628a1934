"""A corpus of hostile and unusual image files, written by the tests (``write_corpus``), with what vitkit must make
of each: the RGB pixels it should read (``GOOD``: exactly, or within a JPEG tolerance), or an error naming the file
(``BAD``). Used by ``test_data_hostile_inputs.py`` through the imagefolder and the COCO paths."""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 32, 16  # every good image is W×H pixels as displayed (the EXIF-rotated one is stored H×W)
NON_UTF8 = os.fsdecode(b"caf\xe9.png")  # latin-1 "café": not valid UTF-8; Python keeps the byte as a surrogate


def _pattern() -> np.ndarray:
    """A W×H RGB image of four flat quadrants: survives JPEG nearly unchanged and shows any rotation."""
    img = np.zeros((H, W, 3), dtype=np.uint8)
    img[: H // 2, : W // 2] = (200, 30, 30)
    img[: H // 2, W // 2:] = (30, 200, 30)
    img[H // 2:, : W // 2] = (30, 30, 200)
    img[H // 2:, W // 2:] = (230, 230, 230)
    return img


def _save(img: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kwargs)
    return out.getvalue()


def _gray16() -> tuple[bytes, np.ndarray]:
    deep = (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 680).astype(np.uint16)  # 0 .. 64600
    return _save(Image.fromarray(deep), "PNG"), np.repeat(np.rint(deep / 257).astype(np.uint8)[..., None], 3, -1)


def _rgba() -> tuple[bytes, np.ndarray]:
    rgba = np.zeros((H, W, 4), dtype=np.uint8)
    rgba[..., :3] = _pattern()
    rgba[: H // 2, ..., 3] = 255  # top half opaque, bottom half fully transparent
    expected = _pattern()
    expected[H // 2:] = 255  # transparent pixels composited over white
    return _save(Image.fromarray(rgba, "RGBA"), "PNG"), expected


def _palette() -> tuple[bytes, np.ndarray]:
    img = Image.fromarray(_pattern()).quantize(colors=4)
    return _save(img, "PNG"), np.asarray(img.convert("RGB"))


def _cmyk() -> tuple[bytes, np.ndarray]:
    rgb = Image.fromarray(_pattern())
    return _save(rgb.convert("CMYK"), "JPEG", quality=95, subsampling=0), _pattern()


def _gray() -> tuple[bytes, np.ndarray]:
    gray = (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 2).astype(np.uint8)
    return _save(Image.fromarray(gray, "L"), "PNG"), np.repeat(gray[..., None], 3, -1)


def _exif_rotated() -> tuple[bytes, np.ndarray]:
    stored = np.rot90(_pattern(), k=1)  # stored rotated 90° anticlockwise, (W, H, 3) ...
    img = Image.fromarray(np.ascontiguousarray(stored))
    exif = img.getexif()
    exif[0x0112] = 6  # ... with EXIF orientation 6: "rotate 90° clockwise to display"
    return _save(img, "JPEG", quality=95, subsampling=0, exif=exif), _pattern()


def _large() -> tuple[bytes, np.ndarray]:
    """A genuine large image (12 megapixels, under PIL's limit): read whole."""
    return _save(Image.new("RGB", (4000, 3000), (10, 20, 30)), "PNG"), np.full((3000, 4000, 3), (10, 20, 30), np.uint8)


def _plain() -> tuple[bytes, np.ndarray]:
    return _save(Image.fromarray(_pattern()), "PNG"), _pattern()


def _truncated() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = _save(Image.fromarray(noise), "JPEG")
    return data[: len(data) // 2]


def _bomb() -> bytes:
    """A PNG whose header claims 100000×100000 pixels (10 gigapixels) over a few bytes of data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


GOOD: dict[str, Callable[[], tuple[bytes, np.ndarray]]] = {
    "gray16.png": _gray16, "rgba.png": _rgba, "palette.png": _palette, "cmyk.jpg": _cmyk, "gray.png": _gray,
    "exif_rotated.jpg": _exif_rotated, "large.png": _large, NON_UTF8: _plain,
}
JPEG_TOLERANCE = {"cmyk.jpg": 4, "exif_rotated.jpg": 4}  # largest |difference| of a pixel value allowed
BAD: dict[str, Callable[[], bytes]] = {
    "truncated.jpg": _truncated, "empty.png": lambda: b"", "not_an_image.jpg": lambda: b"name,label\nx,1\n",
    "bomb.png": _bomb,
}
LINK_LOOP = "self_link.png"  # a symbolic link to itself: a bad file in an image folder


def write_corpus(folder: Path, *, link_loop: bool = True) -> dict[str, np.ndarray | None]:
    """Write every file of the corpus into ``folder``; ``{name: expected RGB (H, W, 3) or None for a bad file}``."""
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, np.ndarray | None] = {}
    for name, make in GOOD.items():
        data, expected[name] = make()
        (folder / name).write_bytes(data)
    for name, make in BAD.items():
        (folder / name).write_bytes(make())
        expected[name] = None
    if link_loop:
        os.symlink(LINK_LOOP, folder / LINK_LOOP)
        expected[LINK_LOOP] = None
    return expected


def assert_image(name: str, got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == np.uint8 and got.shape == expected.shape, (name, got.shape, expected.shape)
    diff = np.abs(got.astype(np.int16) - expected.astype(np.int16)).max()
    assert diff <= JPEG_TOLERANCE.get(name, 0), f"{name}: pixel values off by up to {diff}"
