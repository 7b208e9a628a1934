"""``--data.decode gpu``: JPEGs decoded on the training device (nvJPEG through ``torchvision.io.decode_jpeg``).

The CPU path (``vitkit.data.decoding_pipeline``) stays the default and the only one CI runs; this machine has no
GPU, so this path was written and tested on the CPU (``device="cpu"`` runs the same code), never measured on a GPU.

Split of the work: the DataLoader workers still read each file's bytes and header and draw its geometry exactly as
the CPU path does (the same generator calls in the same order: Compose's own draw, the random-resized crop's box on
the header size, the flip), but hand over the bytes and that plan instead of pixels. In the main process, before the
batch moves to the device (``VisionDataModule.on_before_batch_transfer``; torchvision wants the bytes on the CPU),
``decode_batch`` decodes all the batch's JPEGs in one call on the device, crops each box, resizes it to the output
size (bilinear with antialiasing, as the CPU path's training crop; the evaluation resize, area interpolation on
the CPU, differs slightly) and flips, then normalises. Images that are not plain JPEGs are decoded and transformed
by the CPU pipeline in the worker and travel as pixels. Classification only, and without RandAugment or random
erasing (CPU steps on decoded pixels): the datamodule refuses those combinations.

Evaluation plans the imagenet resize (shorter side to ``S / 0.875`` from the header size, centre ``S × S``) the
same way; other evaluation geometries decode on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vitkit.data.collate import normalise_batch, stack_collate
from vitkit.data.decode import EncodedImage
from vitkit.data.decoding_pipeline import DecodingPipeline
from vitkit.data.formats import ClassificationFormat

# a plan: (x1, y1, x2, y2) box of the full image, (h, w) to resize it to, (top, left) of the S × S window, flip
PLAN_FIELDS = 9


class DeferredDecode:
    """Like ``DecodingPipeline`` (same draws), but a plain JPEG comes out as ``(bytes, plan)``, not pixels."""

    decodes = True

    def __init__(self, pipeline, size: int) -> None:
        import albumentations as A

        self.cpu = DecodingPipeline(pipeline)
        self.size = size
        rest = self.cpu.rest
        self.flip = rest[0] if rest and isinstance(rest[0], A.HorizontalFlip) else None
        crop = self.cpu.kind == "crop" and len(rest) == (1 if self.flip else 0)
        centre = self.cpu.kind == "shorter_side" and len(rest) == 1 and isinstance(rest[0], A.CenterCrop)
        self.mode = "crop" if crop else "centre" if centre else None

    def set_random_state(self, random_generator: np.random.Generator, py_random) -> None:
        self.cpu.set_random_state(random_generator, py_random)

    def __call__(self, *, image: np.ndarray | EncodedImage) -> dict:
        if self.mode is None or not isinstance(image, EncodedImage) or not image.reducible:
            return self.cpu(image=image)
        self.cpu.pipeline.py_random.random()  # Compose's own draw, as DecodingPipeline makes it
        s = self.size
        if self.mode == "crop":
            x1, y1, x2, y2 = self.cpu.draw_crop(image.height, image.width)
            flip = self.flip is not None and self.flip.should_apply()
            plan = (x1, y1, x2, y2, s, s, 0, 0, int(flip))
        else:
            scale = self.cpu.first.get_params_dependent_on_data({"shape": (image.height, image.width, 3)}, {})["scale"]
            h, w = max(1, round(image.height * scale)), max(1, round(image.width * scale))
            plan = (0, 0, image.width, image.height, h, w, (h - s) // 2, (w - s) // 2, 0)
        return {"image": image, "plan": plan}


class DeviceDecodeFormat(ClassificationFormat):
    """Classification samples whose JPEGs are decoded later, on the device: a sample is ``{"jpeg": uint8 (n,)
    bytes, "plan": int64 (9,), "label"}`` or, for other images, ``{"image": uint8 (C, S, S), "label"}``; ``collate``
    keeps both kinds, ``decode_batch`` turns the batch into the usual ``{"image": float32 (B, C, S, S), "label"}``."""

    def transforms(self, augment: str, image_size: int, seed: int, **recipe):
        train, evaluation = super().transforms(augment, image_size, seed, **recipe)
        self.size = image_size
        return DeferredDecode(train.pipeline, image_size), DeferredDecode(evaluation.pipeline, image_size)

    def format(self, sample: dict, transform) -> dict[str, Tensor]:
        out = transform(image=sample["image"])
        label = torch.tensor(sample["label"], dtype=torch.long)
        if "plan" not in out:  # decoded and transformed in the worker
            return {"image": torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1))), "label": label}
        data = torch.frombuffer(bytearray(out["image"].data), dtype=torch.uint8)  # (n,) the JPEG file
        return {"jpeg": data, "plan": torch.tensor(out["plan"], dtype=torch.long), "label": label}

    def collate(self, samples: list[dict[str, Tensor]], *, on_device: bool = False) -> dict:
        if all("jpeg" not in s for s in samples):
            return super().collate(samples, on_device=on_device)
        plans = torch.stack([s["plan"] if "jpeg" in s else torch.full((PLAN_FIELDS,), -1) for s in samples])
        pixels = [s.get("image") for s in samples]
        return {"jpeg": [s.get("jpeg") for s in samples], "plan": plans, "pixels": pixels,
                "label": torch.stack([s["label"] for s in samples])}

    def decode_batch(self, batch: dict, device: torch.device) -> dict[str, Tensor]:
        """``collate``'s deferred batch → ``{"image": float32 (B, C, S, S) normalised on device, "label"}``."""
        from torchvision.io import ImageReadMode, decode_jpeg

        index = [i for i, data in enumerate(batch["jpeg"]) if data is not None]
        decoded = decode_jpeg([batch["jpeg"][i] for i in index], mode=ImageReadMode.RGB, device=device)
        images: list[Tensor | None] = [p.to(device) if p is not None else None for p in batch["pixels"]]
        for i, full in zip(index, decoded, strict=True):
            images[i] = _apply_plan(full, batch["plan"][i].tolist(), self.size)
        samples = [{"image": image, "label": label} for image, label in zip(images, batch["label"], strict=True)]
        batch = stack_collate(samples)
        return {**batch, "image": normalise_batch(batch["image"], self.info.mean, self.info.std)}


def _apply_plan(full: Tensor, plan: list[int], size: int) -> Tensor:
    """``uint8 (C, H, W)`` → ``uint8 (C, S, S)``: box, resize, window, flip (see ``DeferredDecode``)."""
    x1, y1, x2, y2, h, w, top, left, flip = plan
    box = full[:, y1:y2, x1:x2].unsqueeze(0).float()  # (1, C, bh, bw)
    resized = torch.nn.functional.interpolate(box, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    window = resized[0, :, top:top + size, left:left + size]  # (C, S, S)
    if flip:
        window = window.flip(-1)
    return window.round_().clamp_(0, 255).to(torch.uint8)
