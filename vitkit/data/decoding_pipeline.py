"""An albumentations pipeline that decodes its image itself, at the smallest size its first step needs.

``DecodingPipeline(pipeline)`` is called like the pipeline, ``transform(image=...)["image"]``, with either decoded
pixels (``uint8 (H, W, C)``: the pipeline runs unchanged) or an ``EncodedImage`` (``vitkit.data.decode``: bytes
and header). For an encoded image the first step is planned on the header's full size, with the step's own code and
the pipeline's own random generator, before anything is decoded:

- ``A.RandomResizedCrop`` (the imagenet preset's training crop): the crop box is drawn by the step itself
  (``get_params_dependent_on_data`` on the full size: the same draws, in the same order, from the same generator as
  the plain pipeline, so every crop's scale, ratio and position is the one the plain pipeline would take); the
  JPEG is decoded at the smallest DCT scale at which the box still covers the output size (plus one pixel), the box
  is mapped onto that grid (``decode.region``, within half a reduced pixel) and the step's own ``apply`` crops and
  resizes it — the same resize (``vitkit.data.transforms.RandomResizedCrop``: PIL's antialiased bilinear);
- ``A.SmallestMaxSize`` (the imagenet evaluation's resize, followed by its centre crop): the output size is the one
  the step gives the full image (``round(side · scale)``); the JPEG is decoded at the smallest scale whose shorter
  side still reaches it, and that whole frame is resized to exactly that output size (area interpolation when
  shrinking, as the step does).

The remaining steps (flip, centre crop, RandAugment, erasing) then run as in the pipeline, drawing from the same
generator in the same order (``Compose`` itself draws once before its steps, for its own probability, in
albumentations 2.0; that draw is made too, and ``tests/data/test_data_decode.py`` fails if the streams part). Any
other first step, and images that are not plain JPEGs, get a full decode and the pipeline unchanged. A box smaller
than twice the output size decodes at full scale: only the scales 1/2, 1/4 and 1/8 are used (``vitkit.data.decode``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vitkit.data.decode import EncodedImage, decode, region

_MARGIN = 1  # reduced pixels beyond the output size, so rounding the box onto the reduced grid never upsamples


class DecodingPipeline:
    """``pipeline`` (an ``A.Compose``) taking encoded images too; ``decodes = True`` tells the dataset to hand it
    ``EncodedImage``s (``vitkit.data.datasets.raw_sample``)."""

    decodes = True

    def __init__(self, pipeline) -> None:
        import albumentations as A

        self.pipeline = pipeline
        first = pipeline.transforms[0] if pipeline.transforms else None
        self.first, self.rest = first, list(pipeline.transforms[1:])
        if isinstance(first, A.RandomResizedCrop):
            self.kind, self._plan = "crop", self._crop
        elif isinstance(first, A.SmallestMaxSize) and first.p >= 1.0:
            self.kind, self._plan = "shorter_side", self._shorter_side
        else:
            self.kind, self._plan = None, None  # full decode, then the pipeline as it is

    def set_random_state(self, random_generator: np.random.Generator, py_random) -> None:
        """The pipeline's generators (``vitkit.data.transforms.seed_transform``); its steps share them."""
        self.pipeline.set_random_state(random_generator, py_random)

    def __call__(self, *, image: np.ndarray | EncodedImage) -> dict[str, Any]:
        if not isinstance(image, EncodedImage):
            return self.pipeline(image=image)
        if self._plan is None:
            return self.pipeline(image=decode(image, image.height, image.width)[0])
        self.pipeline.py_random.random()  # what Compose draws first for its own probability: the same stream
        data = {"image": self._plan(image)}
        for step in self.rest:
            data = step(**data)
        return data

    def draw_crop(self, height: int, width: int) -> tuple[int, int, int, int]:
        """The random-resized crop's next box ``(x1, y1, x2, y2)`` on a ``height × width`` image, drawn by the step
        itself from the pipeline's generator."""
        return self.first.get_params_dependent_on_data({"shape": (height, width, 3)}, {})["crop_coords"]

    def _crop(self, image: EncodedImage) -> np.ndarray:
        """The random-resized crop, drawn on the full size, decoded at the smallest scale that covers it."""
        step = self.first
        box = self.draw_crop(image.height, image.width)
        out_h, out_w = step.size
        box_h, box_w = box[3] - box[1], box[2] - box[0]
        pixels, scale = decode(image, math.ceil(image.height * (out_h + _MARGIN) / box_h),
                               math.ceil(image.width * (out_w + _MARGIN) / box_w))
        if scale == 1.0:
            return step.apply(pixels, crop_coords=box)
        return step.apply(pixels, crop_coords=region(box, scale, pixels.shape))

    def _shorter_side(self, image: EncodedImage) -> np.ndarray:
        """The shorter side to the step's size, decoded at the smallest scale whose shorter side reaches it."""
        import cv2

        step = self.first
        shape = (image.height, image.width, 3)
        s = step.get_params_dependent_on_data({"shape": shape}, {})["scale"]
        out_h, out_w = max(1, round(image.height * s)), max(1, round(image.width * s))  # as the step rounds
        pixels, scale = decode(image, out_h + _MARGIN, out_w + _MARGIN)
        x1, y1, x2, y2 = region((0, 0, image.width, image.height), scale, pixels.shape)
        frame = pixels[y1:y2, x1:x2]
        if frame.shape[:2] == (out_h, out_w):
            return frame
        shrink = frame.shape[0] > out_h or frame.shape[1] > out_w
        interpolation = cv2.INTER_AREA if shrink and step.area_for_downscale in ("image", "image_mask") \
            else step.interpolation
        return cv2.resize(frame, (out_w, out_h), interpolation=interpolation)
