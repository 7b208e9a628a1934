"""Two albumentations transforms the detection presets need and albumentations lacks, both bbox-aware:

- ``ShorterSideResize``: the shorter side to a size drawn from a list, unless the longer side would then exceed
  ``max_size`` (then the longer side is ``max_size``) — DETR's multi-scale resize (Carion et al. 2020, §4:
  "shortest side at least 480 and at most 800 pixels while the longest at most 1333");
- ``RandomSizeCrop``: a crop whose height and width are drawn independently from ``[min_size, max_size]`` (capped
  by the image), placed uniformly — the random crop of the same section.

They extend albumentations' documented extension points (``MaxSizeTransform`` returns a ``scale``; ``BaseCrop``
returns ``crop_coords``), so boxes follow through albumentations' own code: a resize leaves normalised boxes as they
are, a crop clips them and drops those left outside. Imported only by ``vitkit.data.transforms`` when a detection
pipeline is built (albumentations is imported here at module level).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from albumentations.augmentations.crops.transforms import BaseCrop
from albumentations.augmentations.geometric.resize import MaxSizeTransform


class ShorterSideResize(MaxSizeTransform):
    """Resize keeping the aspect ratio: shorter side → a random choice of ``sizes``, longer side ≤ ``max_size``."""

    def __init__(self, sizes: Sequence[int], max_size: int, p: float = 1.0) -> None:
        super().__init__(max_size=[int(s) for s in sizes], area_for_downscale="image", p=p)
        if not sizes or min(sizes) < 1 or max_size < 1:
            raise ValueError(f"sizes {list(sizes)} and max_size {max_size} must be positive")
        self.sizes, self.longest = tuple(int(s) for s in sizes), int(max_size)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        size = self.sizes[0] if len(self.sizes) == 1 else self.py_random.choice(self.sizes)
        return {"scale": min(size / min(h, w), self.longest / max(h, w))}


class RandomSizeCrop(BaseCrop):
    """Crop ``h × w`` with ``h, w`` uniform in ``[min_size, max_size]`` (each at most the image's side)."""

    def __init__(self, min_size: int, max_size: int, p: float = 1.0) -> None:
        super().__init__(p=p)
        if not 1 <= min_size <= max_size:
            raise ValueError(f"need 1 <= min_size <= max_size, got {min_size}, {max_size}")
        self.min_size, self.max_size = int(min_size), int(max_size)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        H, W = params["shape"][:2]
        h = self.py_random.randint(min(self.min_size, H), min(self.max_size, H))
        w = self.py_random.randint(min(self.min_size, W), min(self.max_size, W))
        y, x = self.py_random.randint(0, H - h), self.py_random.randint(0, W - w)
        return {"crop_coords": (x, y, x + w, y + h)}

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("min_size", "max_size")
