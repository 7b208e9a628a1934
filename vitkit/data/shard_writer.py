"""Writing an image folder as streaming shards (``vitkit prepare``; the layout is ``vitkit.data.shards``').

Each split's images go into litdata chunks in the folder's order (class by class, files sorted), record ``i`` being
the split's ``i``-th image, so a shard folder has the same samples, labels and validation hold-out as its image
folder. At full size a record holds the file's bytes unchanged (no re-encoding, no decoding: an unreadable file is
found when it is read in training, where ``skip_bad_files`` reports it by name). With ``max_side`` each image is
decoded as training would decode it (EXIF orientation, grey, alpha, 16 bits), shrunk so its longer side is at most
``max_side`` (area interpolation; smaller images are kept as they are) and stored as a JPEG of ``quality`` — FFCV's
recipe for fast ImageNet training: a 320-pixel store decodes several times faster than full-size photos and still
feeds 224-pixel random-resized crops. An unreadable file then stops ``prepare`` with its name.

A COCO set is written by ``vitkit.data.shard_coco`` (with this module's chunk writer and resizer).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from vitkit.data.errors import DataError
from vitkit.data.shards import FORMAT, FORMAT_VERSION, MANIFEST, SAMPLES, SPLITS

log = logging.getLogger(__name__)
CHUNK_BYTES = "64MB"


def prepare_shards(source: Path, out: Path, *, max_side: int | None = None, quality: int = 90,
                   overwrite: bool = False, workers: int = 1) -> dict:
    """Write the image folder ``source`` (``root/train/<class>/…``, optional ``val/`` and ``test/``) as shards into
    ``out``; returns the manifest written. ``out`` must be empty or absent unless ``overwrite``. (A COCO set:
    ``vitkit.data.shard_coco``.)"""
    from vitkit.data.imagefolder import describe_folder, list_split

    check_options(source, max_side, quality)
    info = describe_folder(source)
    clear(out, overwrite)
    splits = {}
    for split in SPLITS:
        if not (Path(source) / split).is_dir():
            continue
        files = list_split(Path(source), split, info.class_names)
        names = [str(Path(f).relative_to(source)) for f in files.files]
        _write_split(out / split, files.files.tolist(), files.labels, names, max_side, quality, workers)
        splits[split] = len(files)
        log.info("prepare: %s: %d images written to %s", split, len(files), out / split)
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "task": "classification",
                "class_names": list(info.class_names),
                "splits": splits, "max_side": max_side, "quality": quality if max_side else None,
                "image_size": None if max_side else info.default_image_size, "source": str(Path(source).resolve())}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))  # last: a folder without it is incomplete
    return manifest


def check_options(source: Path, max_side: int | None, quality: int) -> None:
    if max_side is not None and max_side < 1:
        raise DataError(f"--max-side {max_side} must be a positive number of pixels", "e.g. --max-side 320")
    if not 1 <= quality <= 100:
        raise DataError(f"--quality {quality} must lie in 1..100", "e.g. --quality 90")
    if not Path(source).is_dir():
        raise DataError(f"--from {source} is not a folder", "give the image folder (it holds train/<class>/) or the "
                        "COCO set (annotations/ and image folders) to write")


def clear(out: Path, overwrite: bool) -> None:
    """``out`` made an empty folder: refused when it holds files, unless ``overwrite`` and they are shards."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder", "pick another --to")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise DataError(f"{out} is not empty", "pick an empty or new --to folder, or pass --overwrite to replace "
                            "its contents")
        if not (out / MANIFEST).is_file() and not any(out.glob("*/index.json")):
            raise DataError(f"{out} holds files that vitkit prepare did not write; --overwrite only replaces shard "
                            f"folders", "pick an empty or new --to folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _write_split(folder: Path, files: list[str], labels: np.ndarray, names: list[str], max_side: int | None,
                 quality: int, workers: int) -> None:
    records = ({"image": data, "label": int(labels[i]), "name": names[i]}
               for i, (data, _, _) in enumerate(encoded(files, max_side, quality, workers)))
    write_records(folder, records)
    np.savez(folder / SAMPLES, labels=np.asarray(labels, dtype=np.int64), names=np.array(names))


def write_records(folder: Path, records: Iterator[dict]) -> None:
    """litdata chunks of ``records`` (in order: record ``i`` is the ``i``-th) and their index in ``folder``."""
    from litdata.streaming.writer import BinaryWriter

    folder.mkdir(parents=True)
    writer = BinaryWriter(str(folder), chunk_bytes=CHUNK_BYTES)
    for i, record in enumerate(records):
        writer[i] = record
    writer.done()
    writer.merge()


Encoded = tuple[bytes, tuple[int, int] | None, tuple[int, int] | None]


def encoded(files: list[str], max_side: int | None, quality: int, workers: int) -> Iterator[Encoded]:
    """``(bytes, decoded size, stored size)`` of each record, in order (sizes ``(height, width)``; ``None`` at
    full size, where the file's bytes are stored unread); the shrinking runs in ``workers`` processes."""
    if max_side is None:
        for path in files:
            yield Path(path).read_bytes(), None, None
        return
    jobs = [(path, max_side, quality) for path in files]
    if workers <= 1:
        yield from map(_shrunk, jobs)
        return
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(_shrunk, jobs, chunksize=32)


def _shrunk(job: tuple[str, int, int]) -> Encoded:
    """One image decoded, its longer side brought to at most ``max_side``, encoded as JPEG; with its size before
    and after."""
    import cv2
    import simplejpeg

    from vitkit.data.decode import read_image

    path, max_side, quality = job
    pixels = read_image(path)  # (H, W, 3) uint8
    h, w = pixels.shape[:2]
    scale = max_side / max(h, w)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    data = simplejpeg.encode_jpeg(np.ascontiguousarray(pixels), quality=quality, colorspace="RGB",
                                  colorsubsampling="420")
    return data, (h, w), pixels.shape[:2]
