"""Batching of formatted samples (dicts of tensors) into batch dicts.

Classification (and any task whose samples have equal shapes) stacks along a new batch dimension. Tasks whose
samples vary in size (detection: images of different sizes, different numbers of boxes) provide their own collate
in their task format: pad images to a common size with a pixel mask, keep targets as a list.
"""

from __future__ import annotations

import torch
from torch import Tensor


def stack_collate(samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """``[{key: (…)}] * B → {key: (B, …)}``; every sample must have the same keys and per-key shapes."""
    keys = samples[0].keys()
    return {key: torch.stack([s[key] for s in samples]) for key in keys}
