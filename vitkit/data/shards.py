"""Streaming shards: an image folder or a COCO set written by ``vitkit prepare`` as litdata chunks, read as
``--data.dataset streaming --data.root OUT``.

Layout of ``OUT`` (``vitkit.data.shard_writer`` writes it)::

    OUT/vitkit_shards.json        format version, task, class names, splits, max side, the source
    OUT/<split>/index.json        litdata's index of the split's chunks (split: train, and val / test when present)
    OUT/<split>/chunk-*.bin       records {"image": the encoded image (bytes), "name": str (, "label": int)}
    OUT/<split>/samples.npz       the records' names and targets, so splits and messages need no chunk read
    OUT/<split>/instances.json    detection: the split's COCO annotation file, for evaluation

Classification shards (from an image folder) label each record; detection shards (from a COCO set,
``vitkit.data.shard_detection``) keep the boxes in ``samples.npz``. The root is a local folder or a URL that litdata
reads (``s3://bucket/prefix``, ``gs://``, ``r2://``, ``azure://``, ``hf://``, or ``local:PATH`` for a folder read as
if remote): the small files are then fetched through litdata's downloader for that storage (its credentials), the
chunks downloaded on first use into ``--data.cache_dir`` (default litdata's own cache folder); a URL root is never
looked up on the local disk, and a download that fails (no credentials, no such file) is one line naming the URL.

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

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from vitkit.data.datasets import is_url
from vitkit.data.errors import DataError

FORMAT = "vitkit-shards"
FORMAT_VERSION = 1
MANIFEST = "vitkit_shards.json"
SAMPLES = "samples.npz"
INDEX = "index.json"
SPLITS = ("train", "val", "test")
TASKS = ("classification", "detection")  # of the records; generation trains from classification shards


def manifest_path(root: Path) -> Path:
    return Path(root) / MANIFEST


def reprepare(root: Path | str | None, task: str = "classification") -> str:
    source = "COCO_ROOT" if task == "detection" else "IMAGE_FOLDER"
    return (f"write it again: vitkit prepare --from {source} --to {root or 'OUT'} --overwrite "
            f"(add --max-side N to pre-resize)")


def split_location(root: Path | str, split: str) -> Path | str:
    """Where a split's chunks are: a local folder, or the URL litdata streams from."""
    return f"{root}/{split}" if is_url(root) else Path(root) / split


def read_file(root: Path | str, name: str) -> bytes:
    """A small file of a shard folder (``name`` relative to ``root``): read in place, or from a URL root fetched
    through litdata's downloader for that storage. Local: ``OSError`` to the caller; URL: ``DataError``."""
    if not is_url(root):
        return (Path(root) / name).read_bytes()
    try:
        from litdata.streaming.downloader import get_downloader
    except ImportError as e:
        raise DataError("reading shards needs litdata", "pip install 'vitkit[streaming]'") from e
    url = f"{root}/{name}"
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(name))
        try:
            get_downloader(str(root), tmp, []).download_file(url, local)
            if not os.path.isfile(local):  # a downloader that swallowed its "not found"
                raise FileNotFoundError("no such file")
            return Path(local).read_bytes()
        except Exception as e:  # litdata's and the storage client's errors: no credentials, no such key, ...
            raise DataError(f"cannot read {url}: {one_line(e)}", remote_fix(root)) from e


def one_line(error: Exception, limit: int = 300) -> str:
    """An exception from litdata or a storage client as one short line."""
    text = " ".join(str(error).split()) or "no message"
    return f"{type(error).__name__}: {text[:limit]}{' ...' if len(text) > limit else ''}"


def remote_fix(root: Path | str) -> str:
    return (f"check that {root} is the folder `vitkit prepare --to` wrote, copied whole, and that this machine may "
            f"read it (s3://: boto3's credentials, e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws or an "
            f"instance role; AWS_ENDPOINT_URL for other S3 stores)")


def read_manifest(root: Path | str | None, *, check_files: bool = True) -> dict:
    """The shard folder's description; ``DataError`` (one line, how to re-prepare) when it is missing, unreadable,
    of another format version, or (local folders, ``check_files``) a split's index files are missing. A URL root is
    not looked up locally: its manifest is fetched (its split files are fetched when the splits are built)."""
    if root is None:
        raise DataError("dataset 'streaming' needs --data.root PATH", "the folder `vitkit prepare --to` wrote")
    if not is_url(root) and not Path(root).is_dir():
        raise DataError(f"shard folder {root} does not exist", "pass --data.root pointing at the folder "
                        "`vitkit prepare --from IMAGE_FOLDER --to OUT` wrote")
    try:
        manifest = json.loads(read_file(root, MANIFEST))
    except (OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{root} is not a vitkit shard folder (no readable {MANIFEST}: {type(e).__name__})",
                        reprepare(root)) from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        manifest = manifest if isinstance(manifest, dict) else {}
        raise DataError(f"{root} holds shards of format {manifest.get('format')!r} version "
                        f"{manifest.get('version')!r}; this vitkit reads {FORMAT!r} version {FORMAT_VERSION}",
                        reprepare(root))
    manifest.setdefault("task", "classification")  # written before detection shards existed
    if manifest["task"] not in TASKS or "train" not in manifest.get("splits", {}):
        raise DataError(f"{root} has no train split or an unknown task {manifest['task']!r}", reprepare(root))
    for split in manifest["splits"] if check_files and not is_url(root) else ():
        for name in (INDEX, SAMPLES):
            if not (Path(root) / split / name).is_file():
                raise DataError(f"{root}/{split}/{name} is missing (an interrupted or partly copied prepare?)",
                                reprepare(root, manifest["task"]))
    return manifest


class ShardSplit(Dataset):
    """One split of a shard folder, by index; subclasses turn a record into a raw sample.

    ``samples`` are the arrays of the split's ``samples.npz`` (``names`` and the targets). litdata's reader is
    opened on first use in each process (DataLoader workers are forked: a reader opened before the fork is not
    reused after it)."""

    def __init__(self, root: Path | str, split: str, cache_dir: str | None = None) -> None:
        self.root, self.split, self.cache_dir = root, split, cache_dir
        self.location = split_location(root, split)
        try:
            data = read_file(root, f"{split}/{SAMPLES}")
            if is_url(root):
                read_file(root, f"{split}/{INDEX}")  # missing: say so now, not at the first record
            with np.load(io.BytesIO(data), allow_pickle=False) as samples:
                self.samples = {key: samples[key] for key in samples.files}
        except (OSError, ValueError) as e:
            if isinstance(e, DataError):
                raise
            what = "is missing (an interrupted or partly copied prepare?)" if isinstance(e, FileNotFoundError) else \
                f"cannot be read: {one_line(e)}"
            raise DataError(f"{self.location}/{SAMPLES} {what}", reprepare(root)) from e
        self.names = self.samples["names"]  # numpy strings: no per-object reference counts for forked workers
        self._reader, self._pid = None, None

    def __len__(self) -> int:
        return len(self.names)

    def path(self, index: int) -> str:
        return f"{self.location}[{index}] ({self.names[index]})"

    def record(self, index: int) -> dict:
        """Record ``index`` as litdata stores it (``{"image": bytes, "name": str, ...}``); ``DataError`` naming it
        when its chunk cannot be read."""
        if self._pid != os.getpid():
            self._reader, self._pid = open_split(self.location, self.cache_dir, self.root), os.getpid()
        try:
            return self._reader[int(index)]
        except Exception as e:  # a truncated or damaged chunk file, a failed download: name the record
            raise DataError(f"cannot read record {self.path(index)}: {one_line(e)}",
                            remote_fix(self.root) if is_url(self.root) else reprepare(self.root)) from e

    def encoded(self, index: int) -> dict:
        """The raw sample with its image still encoded (``vitkit.data.decode.EncodedImage``)."""
        from vitkit.data.decode import encoded_image

        return {"image": encoded_image(bytes(self.record(index)["image"]), self.path(index)), **self.targets(index)}

    def __getitem__(self, index: int) -> dict:
        from vitkit.data.decode import decode_full

        sample = self.encoded(index)
        return {**sample, "image": decode_full(sample["image"])}

    def targets(self, index: int) -> dict:
        raise NotImplementedError

    def __getstate__(self) -> dict:  # spawned workers and pickling: without the open reader
        return {**self.__dict__, "_reader": None, "_pid": None}


class ShardSource(ShardSplit):
    """Classification records: raw samples ``{"image": uint8 (H, W, 3), "label": int}``."""

    def __init__(self, root: Path | str, split: str, cache_dir: str | None = None) -> None:
        super().__init__(root, split, cache_dir)
        self.labels = self.samples["labels"].astype(np.int64)

    def targets(self, index: int) -> dict:
        return {"label": int(self.labels[index])}


def open_split(location: Path | str, cache_dir: str | None = None, root: Path | str | None = None):
    """litdata's ``StreamingDataset`` over one split (a URL: chunks downloaded into ``cache_dir``)."""
    try:
        from litdata import StreamingDataset
    except ImportError as e:
        raise DataError("reading shards needs litdata", "pip install 'vitkit[streaming]'") from e
    try:  # one record per read: litdata's default decodes a window of records around each index
        return StreamingDataset(str(location), cache_dir=cache_dir, batch_decode=False)
    except Exception as e:  # an index litdata cannot parse or fetch: another litdata, damaged, no access
        fix = remote_fix(root) if is_url(str(location)) else reprepare(root or Path(location).parent)
        raise DataError(f"litdata cannot open the shards in {location}: {one_line(e)}", fix) from e
