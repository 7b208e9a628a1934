"""Image files for prediction: paths and folders → a sorted list of files, read in DataLoader workers.

Folders are searched recursively; files whose suffix is not an image format PIL reads are left out (and counted, so
that the caller can say so). A file that fails to decode does not stop a run: the dataset hands back its error, and
the caller names it and goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from vitkit.data.errors import DataError
from vitkit.data.imagefolder import read_image
from vitkit.data.preprocessing import Preprocessing
from vitkit.errors import MissingFileError

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


@dataclass(frozen=True)
class ImageList:
    """The image files found under the given paths, and how many other files were passed over."""

    files: tuple[str, ...]
    ignored: tuple[str, ...]


def find_images(paths: Sequence[str | Path]) -> ImageList:
    """Files given directly and image files under folders (recursively, sorted). A missing path, a folder without
    images or no image at all is a user error."""
    files, ignored = [], []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file())
            images = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES]
            if not images:
                raise DataError(f"folder {path} holds no image files ({len(found)} other files)",
                                f"pass a folder of {'/'.join(sorted(s[1:] for s in IMAGE_SUFFIXES))} files")
            files += map(str, images)
            ignored += [str(p) for p in found if p.suffix.lower() not in IMAGE_SUFFIXES]
        elif path.is_file():
            (files if path.suffix.lower() in IMAGE_SUFFIXES else ignored).append(str(path))
        else:
            raise MissingFileError(f"{path} does not exist", "check the path")
    if not files:
        raise DataError(f"no image files among {', '.join(map(str, paths))}", "pass image files or folders of them")
    if ignored:
        log.info("ignored %d file(s) that are not images by their suffix, e.g. %s", len(ignored), ignored[0])
    return ImageList(tuple(files), tuple(ignored))


class ImageFileDataset(Dataset):
    """``files[i]`` read as RGB and prepared by ``preprocessing``: ``{"index", "image" (C, h, w), "size" (H, W)}``,
    or ``{"index", "error"}`` when the file cannot be read."""

    def __init__(self, files: Sequence[str], preprocessing: Preprocessing) -> None:
        self.files, self.preprocessing = list(files), preprocessing

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            rgb = read_image(self.files[i])  # (H, W, 3) uint8
        except DataError as e:
            return {"index": i, "error": e.what}
        return {"index": i, "image": self.preprocessing(rgb), "size": rgb.shape[:2]}


def keep_batch(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DataLoader ``collate_fn`` that keeps the samples as they are (the predictor batches the readable ones)."""
    return samples
