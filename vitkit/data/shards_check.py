"""``vitkit check-data --dataset streaming --root OUT``: a shard folder checked before training.

In order, each problem an error with its fix (``vitkit.data.checks``): the manifest (present, this format version,
a known task; else the rest is not checked); the class names (present, distinct; detection: one category id each,
distinct); per split, its files (``index.json``, ``samples.npz``), its record count against the manifest and
litdata's index, its chunk files (present and as long as the index says, for a local folder: a missing or truncated
chunk is one error naming it, and its records are not read), its targets (labels among the classes; detection:
box offsets and boxes); then every record (or ``sample`` of them per split, spread evenly) read from its chunk and
decoded in full, as training decodes it, each failure named by split, index and source file. The summary gives the
task, the classes and the records per split (and per class for classification).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vitkit.data.checks import CheckReport
from vitkit.data.datasets import DataOptions, is_url
from vitkit.data.errors import DataError
from vitkit.data.shards import INDEX, MANIFEST, ShardSource, read_file, read_manifest, reprepare

BAD_RECORD_FIX = "replace its source image and prepare the shards again, or train with --data.skip_bad_files true"


def check_shards(options: DataOptions, sample: int | None = None) -> list[CheckReport]:
    if options.root is None:
        raise DataError("check-data --dataset streaming needs --root PATH", "the folder `vitkit prepare --to` wrote")
    if sample is not None and sample < 1:
        raise DataError(f"--sample {sample} must be a positive number of records", "e.g. --sample 1000")
    root = options.root
    report = CheckReport(str(root))
    try:
        manifest = read_manifest(root, check_files=False)  # a split's missing files: that split's error
    except DataError as e:
        report.add("error", "shard_folder", "", e.what, e.fix or reprepare(root))
        return [report]
    task, names = manifest["task"], manifest.get("class_names") or []
    fix = reprepare(root, task)
    if not names or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        report.add("error", "class_names", MANIFEST, f"the class names {names[:10]} are missing, empty or repeated",
                   fix)
    ids = manifest.get("category_ids")
    if task == "detection" and (not isinstance(ids, list) or len(ids) != len(names) or len(set(ids)) != len(ids)):
        report.add("error", "category_ids", MANIFEST, f"category ids {str(ids)[:80]} do not give each of the "
                   f"{len(names)} classes its own id", fix)
    counts = [_check_split(report, options, manifest, split, sample) for split in manifest["splits"]]
    report.summary = f"{task} shards, {len(names)} classes; " + "; ".join(c for c in counts if c)
    return [report]


def _check_split(report: CheckReport, options: DataOptions, manifest: dict, split: str, sample: int | None) -> str:
    root, task = options.root, manifest["task"]
    fix = reprepare(root, task)
    try:
        if task == "detection":
            from vitkit.data.shard_detection import DetectionShardSource

            source = DetectionShardSource(root, split, options.cache_dir)
        else:
            source = ShardSource(root, split, options.cache_dir)
        index = json.loads(read_file(root, f"{split}/{INDEX}"))
        chunks = index["chunks"]
        sizes = [int(c["chunk_size"]) for c in chunks]
    except (OSError, ValueError, KeyError, TypeError) as e:
        what = e.what if isinstance(e, DataError) else f"cannot read the files of split {split}: {type(e).__name__}"
        if isinstance(e, FileNotFoundError):
            what = f"{split}/{Path(e.filename).name if e.filename else 'a file'} is missing"
        report.add("error", "split_files", split, what, fix)
        return ""
    n, expected = len(source), manifest["splits"][split]
    if not n == expected == sum(sizes):
        report.add("error", "split_count", split, f"{expected} records in {MANIFEST}, {n} in samples.npz, "
                   f"{sum(sizes)} in {INDEX}", fix)
        return f"{split}: counts disagree"
    readable = _check_chunks(report, root, split, chunks, fix)
    _check_targets(report, source, split, len(manifest["class_names"]), task, fix)
    chosen = np.arange(n) if sample is None or sample >= n else np.unique(np.linspace(0, n - 1, sample).round())
    starts = np.concatenate([[0], np.cumsum(sizes)])
    checked = 0
    for i in chosen.astype(int):
        if not readable[np.searchsorted(starts, i, side="right") - 1]:
            continue
        checked += 1
        try:
            source[i]
        except DataError as e:
            what = e.what.replace(f" {source.path(i)}", "")  # named once, by the report's `where`
            report.add("error", "bad_record", f"{split}[{i}] ({source.names[i]})", what, BAD_RECORD_FIX)
    return f"{split} {n} records{_per_class(source, manifest, task)}, {checked} read and decoded"


def _check_chunks(report: CheckReport, root, split: str, chunks: list[dict], fix: str) -> list[bool]:
    """Whether each chunk can be read: for a local folder, present and as long as the index says (litdata would
    wait for a missing one to appear); a URL's chunks are found when downloaded."""
    if is_url(root):
        return [True] * len(chunks)
    readable = []
    for chunk in chunks:
        path = Path(root) / split / chunk["filename"]
        size = path.stat().st_size if path.is_file() else None
        if size is None:
            report.add("error", "chunk_missing", f"{split}/{chunk['filename']}", f"the chunk file {path} is missing "
                       f"({chunk['chunk_size']} records)", fix)
        elif size < int(chunk.get("chunk_bytes") or 0):
            report.add("error", "chunk_truncated", f"{split}/{chunk['filename']}", f"the chunk file {path} has "
                       f"{size} bytes of {chunk['chunk_bytes']} (an interrupted copy?)", fix)
        readable.append(size is not None and size >= int(chunk.get("chunk_bytes") or 0))
    return readable


def _check_targets(report: CheckReport, source, split: str, k: int, task: str, fix: str) -> None:
    labels = source.labels if task == "classification" else source.box_labels
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        report.add("error", "label_range", split, f"labels run from {labels.min()} to {labels.max()}, not within the "
                   f"{k} classes", fix)
    if task == "detection":
        offsets, boxes = source.offsets, source.boxes
        if len(offsets) != len(source) + 1 or offsets[0] != 0 or offsets[-1] != len(boxes) or \
                (np.diff(offsets) < 0).any():
            report.add("error", "box_offsets", split, "the box offsets do not partition the boxes by image", fix)
        elif boxes.size and (not np.isfinite(boxes).all() or (boxes[:, 2:] <= 0).any()):
            report.add("error", "boxes", split, "boxes with no width, no height or non-finite values", fix)


def _per_class(source, manifest: dict, task: str) -> str:
    if task != "classification":
        return f", {len(source.boxes)} boxes"
    counts = np.bincount(source.labels, minlength=len(manifest["class_names"]))
    if len(counts) <= 10:
        return " (" + ", ".join(f"{name} {c}" for name, c in zip(manifest["class_names"], counts, strict=False)) + ")"
    return f" ({counts.min()}–{counts.max()} per class)"
