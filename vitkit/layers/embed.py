"""Token embeddings: images to token sequences.

``PatchEmbed`` is ViT's linear projection of non-overlapping ``p × p`` patches (Dosovitskiy et al. 2020, eq. 1),
computed as a convolution with kernel and stride ``p``. ``ConvEmbed`` is CvT's convolutional token embedding
(Wu et al. 2021, §3.1): an overlapping strided convolution followed by LayerNorm over channels.
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


class ConvEmbed(nn.Module):
    """``(B, C_in, H, W)`` → tokens ``(B, h·w, C)`` and their grid ``(h, w)``: overlapping strided conv + LayerNorm.

    ``h = ⌊(H + 2·padding − kernel_size) / stride⌋ + 1`` (likewise ``w``): the kernel is larger than the stride, so
    neighbouring tokens see overlapping pixels, unlike ``PatchEmbed``.
    """

    def __init__(
        self, in_chans: int, embed_dim: int, *, kernel_size: int, stride: int, padding: int, bias: bool = True
    ) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size, stride=stride, padding=padding, bias=bias)
        self.norm = nn.LayerNorm(embed_dim)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Token grid ``(h, w)`` for an input of ``height × width``; raises when the input is too small."""
        k, s, p = self.proj.kernel_size[0], self.proj.stride[0], self.proj.padding[0]
        h, w = (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1
        if h < 1 or w < 1:
            raise ValueError(f"input of {height}×{width} is too small for a {k}×{k} embedding with padding {p}")
        return h, w

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        self.grid_size(x.shape[-2], x.shape[-1])
        x = self.proj(x)  # (B, C, h, w)
        grid = (x.shape[-2], x.shape[-1])
        return self.norm(x.flatten(2).transpose(1, 2)), grid  # (B, h·w, C)
