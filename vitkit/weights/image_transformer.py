"""Image Transformer checkpoints: vitkit's own layout only (tensor2tensor's TF1 checkpoints are not read).

A class-conditional model trained on another number of classes keeps everything but its class embedding.
"""

from __future__ import annotations

from torch import Tensor, nn

HEAD_PREFIXES = ("class_embed.",)


def convert(state_dict: dict[str, Tensor], model: nn.Module) -> tuple[dict[str, Tensor], list[str]]:
    return dict(state_dict), []
