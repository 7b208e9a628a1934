"""Token embeddings: images to token sequences.

``PatchEmbed`` is ViT's linear projection of non-overlapping ``p × p`` patches (Dosovitskiy et al. 2020, eq. 1),
computed as a convolution with kernel and stride ``p``.
"""

from __future__ import annotations

from torch import Tensor, nn


class PatchEmbed(nn.Module):
    """``(B, C_in, H, W)`` → ``(B, h·w, C)`` with ``h = H / p``, ``w = W / p``; any ``H, W`` divisible by ``p``."""

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768, *, bias: bool = True) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Token grid ``(h, w)`` for an image of ``height × width``; raises if the patch size does not divide it."""
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"image size {height}×{width} is not divisible by the patch size {p}; resize or pad it")
        return height // p, width // p

    def forward(self, x: Tensor) -> Tensor:
        self.grid_size(x.shape[-2], x.shape[-1])
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, C, h, w) → (B, h·w, C)
