"""Vision Transformer classifier (Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words").

Image → non-overlapping patches → linear embedding (eq. 1) → [class token; patches] + position embedding →
pre-norm encoder blocks (eq. 2–3) → final norm → class token or mean of patch tokens → linear head (eq. 4).

Parameter names follow timm's layout, so timm checkpoints load with no renaming; position embeddings are resampled
at load time when the grid differs, and at forward time for images of another size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn

from vitkit.layers import Block, PatchEmbed, drop_path_rates, resample_pos_embed, sincos_2d
from vitkit.layers.checkpointing import run_block
from vitkit.layers.init import trunc_normal_linears_
from vitkit.layers.intermediates import take_indices


@dataclass(frozen=True)
class ViTConfig:
    img_size: int = 224  # training resolution; the learned position table has (img_size / patch_size)² entries
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000  # 0 gives a model without head (features only)
    dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    class_token: bool = True
    global_pool: Literal["token", "avg"] = "token"  # "avg" pools patch tokens, as in the paper's appendix D.3
    pos_embed: Literal["learn", "sincos"] = "learn"  # fixed 2-D sin-cos helps on small data
    drop_rate: float = 0.0  # dropout after position embedding, in the MLPs, and before the head
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0  # stochastic depth, rising linearly with depth: the main regulariser for ViTs
    fused_attn: bool = True  # SDPA; False uses the reference attention path

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"dim={self.dim} must be divisible by num_heads={self.num_heads}")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size={self.img_size} must be divisible by patch_size={self.patch_size}")
        if self.global_pool == "token" and not self.class_token:
            raise ValueError("global_pool='token' needs class_token=True; use global_pool='avg' without it")


class VisionTransformer(nn.Module):
    """ViT classifier: ``forward(images (B, C, H, W)) -> logits (B, num_classes)``, which is
    ``forward_head(forward_features(images))``.

    ``forward_features`` returns the normalised tokens ``(B, P + h·w, C)`` (``P`` = 1 with a class token, else 0);
    ``forward_head`` pools them and applies the head. Any image size divisible by the patch size is accepted.
    """

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, cfg.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim)) if cfg.class_token else None
        num_pos = self.grid[0] * self.grid[1] + self.num_prefix_tokens
        self.pos_embed = nn.Parameter(torch.zeros(1, num_pos, cfg.dim), requires_grad=cfg.pos_embed == "learn")
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        norm_layer = partial(nn.LayerNorm, eps=1e-6)  # the reference JAX implementation's epsilon
        dpr = drop_path_rates(cfg.drop_path_rate, cfg.depth)
        self.blocks = nn.Sequential(*[
            Block(cfg.dim, cfg.num_heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias, proj_drop=cfg.drop_rate,
                  attn_drop=cfg.attn_drop_rate, drop_path=dpr[i], norm_layer=norm_layer, fused_attn=cfg.fused_attn)
            for i in range(cfg.depth)
        ])
        # timm's layout: with average pooling the final norm moves after pooling (fc_norm).
        use_fc_norm = cfg.global_pool == "avg"
        self.norm = nn.Identity() if use_fc_norm else norm_layer(cfg.dim)
        self.fc_norm = norm_layer(cfg.dim) if use_fc_norm else nn.Identity()
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.head = nn.Linear(cfg.dim, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self.grad_checkpointing = False
        self.init_weights()

    @property
    def num_features(self) -> int:
        return self.config.dim

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.config.class_token)

    @property
    def grid(self) -> tuple[int, int]:
        """Token grid ``(h, w)`` of the training resolution (the learned position table's)."""
        return (self.config.img_size // self.config.patch_size,) * 2

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass instead of storing its activations (``layers.checkpointing``)."""
        self.grad_checkpointing = enable

    def init_weights(self) -> None:
        """Truncated-normal(0.02) linears and tables, zero biases, as in the reference JAX implementation."""
        if self.config.pos_embed == "sincos":
            table = sincos_2d(*self.grid, self.config.dim)
            self.pos_embed.data[:, self.num_prefix_tokens:] = table
        else:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        trunc_normal_linears_(self)

    def no_weight_decay(self) -> set[str]:
        """Parameters exempt from weight decay besides biases and norms."""
        return {"pos_embed", "cls_token"}

    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter groups by depth, in timm's form: the embedding first, one group per block, the final norm and
        the head last (layer-wise lr decay, ``timm.optim``)."""
        return {"stem": r"^cls_token|^pos_embed|^patch_embed",
                "blocks": [(r"^blocks\.(\d+)", None), (r"^norm|^fc_norm", (99999,))]}

    def get_classifier(self) -> nn.Module:
        """The head (``nn.Identity`` without one), as timm's models expose it."""
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised head for ``num_classes`` classes (0: none); the config follows."""
        self.config = dataclasses.replace(self.config, num_classes=num_classes)
        self.head = nn.Linear(self.config.dim, num_classes) if num_classes > 0 else nn.Identity()
        self.head.to(self.pos_embed)
        trunc_normal_linears_(self.head)

    def pos_embed_for(self, grid: tuple[int, int]) -> Tensor:
        """The position table ``(1, P + h·w, C)`` for a token grid, resampled when it differs from training."""
        if grid == self.grid:
            return self.pos_embed
        if self.config.pos_embed == "sincos":
            table = sincos_2d(*grid, self.config.dim).to(self.pos_embed)[None]
            return torch.cat([self.pos_embed[:, : self.num_prefix_tokens], table], dim=1)
        return resample_pos_embed(self.pos_embed, grid, self.grid, num_prefix_tokens=self.num_prefix_tokens)

    def forward_features(self, x: Tensor) -> Tensor:
        """Images ``(B, C_in, H, W)`` → normalised tokens ``(B, P + h·w, C)``."""
        x = self._embed(x)
        for block in self.blocks:
            x = run_block(block, x, checkpoint=self.grad_checkpointing)
        return self.norm(x)

    def forward_intermediates(self, x: Tensor, indices: int | list[int] | None = None, *, norm: bool = False,
                              stop_early: bool = False, output_fmt: Literal["NCHW", "NLC"] = "NCHW",
                              intermediates_only: bool = False) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """timm's feature-extraction call: the outputs of the blocks ``indices`` (``layers.intermediates``), without
        prefix tokens, as maps ``(B, C, h, w)`` (``NCHW``) or tokens ``(B, h·w, C)`` (``NLC``); ``norm`` applies the
        final norm to each. Returns them, after ``forward_features``'s output unless ``intermediates_only``
        (``stop_early`` then skips the blocks past the last one taken)."""
        take = take_indices(len(self.blocks), indices)
        grid = self.patch_embed.grid_size(x.shape[-2], x.shape[-1])
        x = self._embed(x)
        last = take[-1] if stop_early and intermediates_only else len(self.blocks) - 1
        outputs = []
        for i, block in enumerate(self.blocks[: last + 1]):
            x = run_block(block, x, checkpoint=self.grad_checkpointing)
            if i in take:
                y = (self.norm(x) if norm else x)[:, self.num_prefix_tokens:]  # (B, h·w, C)
                outputs.append(y.unflatten(1, grid).permute(0, 3, 1, 2) if output_fmt == "NCHW" else y)  # (B, C, h, w)
        return outputs if intermediates_only else (self.norm(x), outputs)

    def forward_head(self, x: Tensor, *, pre_logits: bool = False) -> Tensor:
        if self.config.global_pool == "avg":
            x = x[:, self.num_prefix_tokens:].mean(dim=1)  # (B, C)
        else:
            x = x[:, 0]  # (B, C)
        x = self.head_drop(self.fc_norm(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def _embed(self, x: Tensor) -> Tensor:
        """Patch tokens with the class token and position embeddings: ``(B, C_in, H, W)`` → ``(B, P + h·w, C)``."""
        grid = self.patch_embed.grid_size(x.shape[-2], x.shape[-1])
        x = self.patch_embed(x)  # (B, h·w, C)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + h·w, C)
        return self.pos_drop(x + self.pos_embed_for(grid))


def _timm_like(dim: int, depth: int, num_heads: int) -> ViTConfig:
    return ViTConfig(dim=dim, depth=depth, num_heads=num_heads)


PRESETS = {
    # ImageNet presets, identical in shape and parameter count to timm's models of the same name.
    "vit_tiny_patch16_224": _timm_like(192, 12, 3),
    "vit_small_patch16_224": _timm_like(384, 12, 6),
    "vit_base_patch16_224": _timm_like(768, 12, 12),
    "vit_large_patch16_224": ViTConfig(dim=1024, depth=24, num_heads=16),
    # CIFAR-sized: 32×32 images in 4×4 patches (64 tokens), 10 classes.
    "vit_tiny_patch4_32": ViTConfig(img_size=32, patch_size=4, num_classes=10, dim=192, depth=12, num_heads=3),
    "vit_small_patch4_32": ViTConfig(
        img_size=32, patch_size=4, num_classes=10, dim=384, depth=7, num_heads=12, mlp_ratio=1.0, drop_path_rate=0.1
    ),
    # scikit-learn digits: 8×8 grey images in 2×2 patches (16 tokens).
    "vit_digits": ViTConfig(
        img_size=8, patch_size=2, in_chans=1, num_classes=10, dim=64, depth=4, num_heads=4, mlp_ratio=2.0,
        global_pool="avg", class_token=False, pos_embed="sincos",
    ),
    # For tests: two narrow blocks.
    "vit_test": ViTConfig(img_size=32, patch_size=8, num_classes=10, dim=32, depth=2, num_heads=2),
}

MODEL = VisionTransformer
DESCRIPTIONS = {
    "vit_tiny_patch16_224": "ViT-Ti/16 (timm layout)",
    "vit_small_patch16_224": "ViT-S/16 (timm layout)",
    "vit_base_patch16_224": "ViT-B/16 (Dosovitskiy et al. 2020)",
    "vit_large_patch16_224": "ViT-L/16 (Dosovitskiy et al. 2020)",
    "vit_tiny_patch4_32": "ViT-Ti at 32×32, patch 4 (CIFAR)",
    "vit_small_patch4_32": "6.3M-parameter ViT for CIFAR from scratch",
    "vit_digits": "ViT for 8×8 digits, 2×2 patches",
    "vit_test": "tiny, for tests",
}
