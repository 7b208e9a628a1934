"""Streaming shards: an image folder written by ``vitkit prepare`` as litdata chunks, read as ``--data.dataset
streaming --data.root OUT``.

Layout of ``OUT`` (``vitkit.data.shard_writer`` writes it)::

    OUT/vitkit_shards.json        format version, class names, splits, max side, the source folder
    OUT/<split>/index.json        litdata's index of the split's chunks (split: train, and val / test when present)
    OUT/<split>/chunk-*.bin       records {"image": the encoded image (bytes), "label": int, "name": str}
    OUT/<split>/samples.npz       the records' labels and names, so splits and messages need no chunk read

Reading: each split is a map-style dataset over litdata's ``StreamingDataset``, read **by index** (litdata's random
access, per item: ``batch_decode=False``), and fed through vitkit's own sampler and datamodule exactly as an image
folder is. So every guarantee of the image folder holds unchanged, because it is the same code: the seeded
per-sample order, the exact mid-epoch resume and the DDP sharding that gives the same global batch
(``vitkit.data.sampling``), the augmentation seeded per sample, the reduced-size JPEG decode
(``vitkit.data.decoding_pipeline``), the class names, the validation hold-out and ``skip_bad_files`` (a record that
does not decode is named by its split, index and source file). litdata's own ``StreamingDataLoader`` was not used:
its order is shuffled chunk by chunk and depends on the number of workers and processes, so a run on two
processes would not see the batches of a run on one, and its resume state is its own. The price of reading by index
is that a process touches records all over the split: right for local or network disks (the page cache holds the
chunks); from object storage litdata fetches each chunk on first use into its cache.

A folder without these files, or written by another format version, is refused with one line saying how to write
it again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from vitkit.data.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataOptions,
    DatasetInfo,
    DatasetSplits,
    folder_splits,
    register_dataset,
)
from vitkit.data.errors import DataError

FORMAT = "vitkit-shards"
FORMAT_VERSION = 1
MANIFEST = "vitkit_shards.json"
SAMPLES = "samples.npz"
SPLITS = ("train", "val", "test")


def manifest_path(root: Path) -> Path:
    return Path(root) / MANIFEST


def _reprepare(root: Path | None) -> str:
    return (f"write it again: vitkit prepare --from IMAGE_FOLDER --to {root or 'OUT'} --overwrite "
            f"(add --max-side N to pre-resize)")


def read_manifest(root: Path | None) -> dict:
    """The shard folder's description; ``DataError`` (one line, how to re-prepare) when it is missing, unreadable,
    of another format version, or a split's index files are missing."""
    if root is None:
        raise DataError("dataset 'streaming' needs --data.root PATH", "the folder `vitkit prepare --to` wrote")
    if not Path(root).is_dir():
        raise DataError(f"shard folder {root} does not exist", "pass --data.root pointing at the folder "
                        "`vitkit prepare --from IMAGE_FOLDER --to OUT` wrote")
    try:
        manifest = json.loads(manifest_path(root).read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{root} is not a vitkit shard folder (no readable {MANIFEST}: {type(e).__name__})",
                        _reprepare(root)) from e
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise DataError(f"{root} holds shards of format {manifest.get('format')!r} version "
                        f"{manifest.get('version')!r}; this vitkit reads {FORMAT!r} version {FORMAT_VERSION}",
                        _reprepare(root))
    if "train" not in manifest.get("splits", {}):
        raise DataError(f"{root} has no train split", _reprepare(root))
    for split in manifest["splits"]:
        for name in ("index.json", SAMPLES):
            if not (Path(root) / split / name).is_file():
                raise DataError(f"{root}/{split}/{name} is missing (an interrupted or partly copied prepare?)",
                                _reprepare(root))
    return manifest


class ShardSource(Dataset):
    """One split of a shard folder, by index: raw samples ``{"image": uint8 (H, W, 3), "label": int}``, or with
    ``encoded`` the image's bytes and header (``vitkit.data.decode.EncodedImage``) for a decoding transform.

    litdata's reader is opened on first use in each process (DataLoader workers are forked: a reader opened before
    the fork is not reused after it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        with np.load(self.folder / SAMPLES, allow_pickle=False) as samples:
            self.labels = samples["labels"].astype(np.int64)
            self.names = samples["names"]  # numpy strings: no per-object reference counts for forked workers
        self._reader, self._pid = None, None

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, index: int) -> str:
        return f"{self.folder}[{index}] ({self.names[index]})"

    def encoded(self, index: int) -> dict:
        from vitkit.data.decode import encoded_image

        record = self._record(index)
        return {"image": encoded_image(bytes(record["image"]), self.path(index)), "label": int(self.labels[index])}

    def __getitem__(self, index: int) -> dict:
        from vitkit.data.decode import decode_full

        sample = self.encoded(index)
        return {"image": decode_full(sample["image"]), "label": sample["label"]}

    def _record(self, index: int) -> dict:
        if self._pid != os.getpid():
            self._reader, self._pid = _open_split(self.folder), os.getpid()
        try:
            return self._reader[int(index)]
        except Exception as e:  # a truncated or damaged chunk file: name the record
            raise DataError(f"cannot read record {self.path(index)}: {type(e).__name__}: {e}",
                            _reprepare(self.folder.parent)) from e

    def __getstate__(self) -> dict:  # spawned workers and pickling: without the open reader
        return {**self.__dict__, "_reader": None, "_pid": None}


def _open_split(folder: Path):
    try:
        from litdata import StreamingDataset
    except ImportError as e:
        raise DataError("reading shards needs litdata", "pip install 'vitkit[streaming]'") from e
    try:  # one record per read: litdata's default decodes a window of records around each index
        return StreamingDataset(str(folder), batch_decode=False)
    except Exception as e:  # an index litdata cannot parse: written by another litdata, or damaged
        raise DataError(f"litdata cannot open the shards in {folder}: {type(e).__name__}: {e}",
                        _reprepare(folder.parent)) from e


def _describe(options: DataOptions) -> DatasetInfo:
    manifest = read_manifest(options.root)
    return DatasetInfo(tuple(manifest["class_names"]), 3, manifest.get("image_size"), IMAGENET_MEAN, IMAGENET_STD,
                       "imagenet", use_workers=True)


def _build(options: DataOptions, info: DatasetInfo) -> DatasetSplits:
    splits = read_manifest(options.root)["splits"]
    sources = {split: ShardSource(options.root / split) if split in splits else None for split in SPLITS}
    train = sources["train"]
    return folder_splits(train, train.labels, sources["val"], sources["test"], options)


register_dataset("streaming", describe=_describe, build=_build)
