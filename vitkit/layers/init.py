"""Weight initialisation shared by the Transformer families."""

from __future__ import annotations

from torch import nn


def trunc_normal_linears_(module: nn.Module, std: float = 0.02) -> None:
    """Every ``nn.Linear`` inside ``module``: weights truncated-normal(0, ``std``), biases zero (ViT's reference
    JAX initialisation, also used by CvT and the Image Transformer)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
