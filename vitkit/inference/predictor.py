"""``Predictor``: a trained classifier or detector applied to file paths, PIL images or tensors.

``Predictor.from_checkpoint(path)(images)`` rebuilds the task saved in a ``vitkit fit`` checkpoint (no pickled code
runs) and prepares every image with the preprocessing saved beside its weights (``vitkit.data.preprocessing``), the
same one validation used; images of any size and mode are resized and converted by it. Classifiers give a
``ClassPrediction`` (top-k classes and probabilities) per image, detectors ``Detections`` (boxes in the original
image's pixels). ``predict_files`` reads files and folders in DataLoader workers, batches them, and names the files it
could not read instead of stopping.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vitkit.data.collate import pad_collate
from vitkit.data.imagefolder import read_image
from vitkit.data.preprocessing import Preprocessing
from vitkit.errors import CheckpointError, ConfigError
from vitkit.inference.files import ImageFileDataset, find_images, keep_batch
from vitkit.inference.results import ClassPrediction, DetectedObject, Detections
from vitkit.tasks import ClassificationTask, DetectionTask
from vitkit.tasks.shell import TaskShell, load_task

log = logging.getLogger(__name__)
Result = ClassPrediction | Detections


@dataclass(frozen=True)
class FilePredictions:
    """``predict_files``' outcome: one result per readable file (in file order), ``(file, why)`` for each file that
    could not be read, and the non-image files passed over."""

    results: list[Result]
    skipped: list[tuple[str, str]]
    ignored: tuple[str, ...]


class Predictor:
    """A classification or detection task in eval mode with its preprocessing.

    Args:
        task: a ``ClassificationTask`` or ``DetectionTask``.
        preprocessing: how an image becomes the model's input (the checkpoint's, see ``saved_preprocessing``).
        top_k: classes kept per image (classifiers; at most the class count).
        threshold: detections scoring above this are kept (detectors).
        device: ``"cpu"``, ``"cuda"``, ...; default: CUDA when available.
    """

    def __init__(self, task: TaskShell, preprocessing: Preprocessing, *, top_k: int = 5, threshold: float = 0.7,
                 device: str | None = None) -> None:
        if not isinstance(task, ClassificationTask | DetectionTask):
            raise CheckpointError(f"{type(task).__name__} has nothing to predict from an image",
                                  "predict with a classification or detection checkpoint (images are drawn from a "
                                  "generator with `vitkit sample`)")
        if top_k < 1 or not 0.0 <= threshold < 1.0:
            raise ConfigError(f"top_k={top_k}, threshold={threshold}", "use top_k >= 1 and a threshold in [0, 1)")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.task = task.eval().to(self.device)
        self.preprocessing = preprocessing
        self.top_k, self.threshold = top_k, threshold

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, expected: type[TaskShell] | None = None, ema: bool = False,
                        **kwargs: Any) -> Predictor:
        """The task of ``vitkit fit`` checkpoint ``path`` with its saved preprocessing (keywords as ``Predictor``);
        ``expected``: the task class the caller needs (another is a ``CheckpointError``); ``ema``: with the
        checkpoint's EMA weights (``load_task``)."""
        task = load_task(path, expected=expected, ema=ema)
        return cls(task, saved_preprocessing(task, path), **kwargs)

    @property
    def is_detector(self) -> bool:
        return isinstance(self.task, DetectionTask)

    def __call__(self, images: Any) -> list[Result]:
        """Results for ``images``: a file path, a PIL image, a tensor ``(C, H, W)`` / ``(B, C, H, W)`` (``uint8``
        0–255, or float 0–1), a numpy ``uint8 (H, W[, C])`` array, or a list of these; one result per image."""
        items = list(images) if isinstance(images, list | tuple) else [images]
        samples = []
        for item in items:
            for source, rgb in _as_arrays(item, first=len(samples)):
                samples.append({"source": source, "image": self.preprocessing(rgb), "size": rgb.shape[:2]})
        return self.predict_samples(samples)

    def predict_files(self, paths: Sequence[str | Path], *, batch_size: int = 64,
                      num_workers: int | None = None) -> FilePredictions:
        """Results for the image files among ``paths`` (folders searched recursively), read and prepared in
        ``num_workers`` DataLoader workers (default: up to 4, one per CPU core) ``batch_size`` images at a time."""
        found = find_images(paths)
        workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
        loader = torch.utils.data.DataLoader(ImageFileDataset(found.files, self.preprocessing), batch_size=batch_size,
                                             num_workers=workers, collate_fn=keep_batch)
        results, skipped = [], []
        for batch in loader:
            for sample in batch:
                sample["source"] = found.files[sample["index"]]
            skipped += [(s["source"], s["error"]) for s in batch if "error" in s]
            results += self.predict_samples([s for s in batch if "error" not in s])
        return FilePredictions(results, skipped, found.ignored)

    @torch.no_grad()
    def predict_samples(self, samples: list[dict[str, Any]]) -> list[Result]:
        """Results for prepared samples ``{"source", "image" (C, h, w), "size" (H, W) of the original}``."""
        if not samples:
            return []
        if self.is_detector:
            batch = pad_collate([{"image": s["image"], "target": None} for s in samples])
            outputs = self.task(batch["image"].to(self.device), batch["pixel_mask"].to(self.device))
            return self.detections(outputs, [s["size"] for s in samples], [s["source"] for s in samples])
        images = torch.stack([s["image"] for s in samples]).to(self.device)  # (B, C, h, w)
        return self.classifications(self.task(images), [s["source"] for s in samples])

    def classifications(self, logits: Tensor, sources: Sequence[str]) -> list[ClassPrediction]:
        """Top-k of classifier ``logits`` ``(B, K)``, one per source."""
        probs, indices = logits.float().softmax(dim=-1).topk(min(self.top_k, logits.shape[-1]), dim=-1)  # (B, k)
        names = self.task.class_names
        return [ClassPrediction(source, tuple(i), tuple(names[j] for j in i), tuple(p))
                for source, i, p in zip(sources, indices.tolist(), probs.tolist(), strict=True)]

    def detections(self, outputs: dict, sizes: Sequence[tuple[int, int]], sources: Sequence[str]) -> list[Detections]:
        """DETR ``outputs`` of images of original ``(H, W)`` ``sizes`` → ``Detections`` above the threshold."""
        task = self.task
        found = task.detections(outputs, torch.tensor([list(s) for s in sizes]), threshold=self.threshold)
        results = []
        for source, (h, w), det in zip(sources, sizes, found, strict=True):
            objects = tuple(
                DetectedObject(c, task.class_names[task.category_ids.index(c)], s, tuple(b))
                for c, s, b in zip(det["labels"].tolist(), det["scores"].tolist(), det["boxes"].tolist(), strict=True))
            results.append(Detections(source, int(h), int(w), objects))
        return results


def saved_preprocessing(task: TaskShell, ckpt: str | Path) -> Preprocessing:
    """The ``Preprocessing`` a checkpoint's data used (``vitkit.data.preprocessing``)."""
    if task.preprocessing is None:
        raise CheckpointError(f"{ckpt} does not say how its images were prepared (no saved preprocessing)",
                              "use a checkpoint of `vitkit fit`, or of a Trainer run with a VisionDataModule")
    return Preprocessing.from_dict(task.preprocessing)


def _as_arrays(item: Any, *, first: int) -> list[tuple[str, np.ndarray]]:
    """One input → ``[(source, uint8 (H, W, C))]`` (several for a batched tensor); ``first`` numbers in-memory
    images."""
    if isinstance(item, str | Path):
        return [(str(item), read_image(item))]
    if isinstance(item, Tensor):
        batch = item[None] if item.ndim == 3 else item
        if batch.ndim != 4:
            raise ConfigError(f"an image tensor of shape {tuple(item.shape)}", "pass (C, H, W) or (B, C, H, W)")
        if batch.is_floating_point():
            batch = (batch.clamp(0, 1) * 255).round()
        pixels = batch.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, C)
        return [(f"<image {first + i}>", p) for i, p in enumerate(pixels)]
    if isinstance(item, np.ndarray):
        return [(f"<image {first}>", item.astype(np.uint8, copy=False))]
    if hasattr(item, "convert"):  # a PIL image
        return [(f"<image {first}>", np.asarray(item.convert("RGB")))]
    raise ConfigError(f"cannot predict on a {type(item).__name__}",
                      "pass file paths, PIL images, numpy uint8 arrays or image tensors")
