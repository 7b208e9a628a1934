"""Convolutional vision Transformer (Wu et al. 2021, "CvT: Introducing Convolutions to Vision Transformers").

A hierarchy of stages. Each stage embeds its input map with an overlapping strided convolution + LayerNorm
(§3.1, the convolutional token embedding: fewer, wider tokens stage by stage) and runs pre-norm Transformer blocks
whose attention inputs come from a convolutional projection (§3.2, eq. 2): the token map goes through a depthwise
``k × k`` convolution + BatchNorm, stride 1 for queries and ``s`` (2) for keys/values ("squeezed" attention: the
key/value grid is ``s²`` times smaller), is flattened back to tokens, and enters the shared ``Attention``, whose
``qkv`` row blocks are the linear q/k/v projections. There are no position embeddings: the convolutions carry
position. A class token joins in the last stage only; it bypasses the convolutional projection (it has no place on
the map) and is prepended to the projected queries, keys and values.

Parameter names follow timm's vocabulary; ``vitkit.weights.cvt`` converts Hugging Face
``CvtForImageClassification`` and microsoft/CvT checkpoints. Two quirks of the official model are kept as config
fields so its weights reproduce: attention scores scaled by ``dim ** -0.5`` instead of ``head_dim ** -0.5``, and
QuickGELU (the official training used it; Hugging Face uses exact GELU).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from vitkit.layers import Attention, ConvEmbed, DropPath, Mlp, drop_path_rates
from vitkit.layers.checkpointing import run_block
from vitkit.layers.init import trunc_normal_linears_
from vitkit.layers.intermediates import take_indices


@dataclass(frozen=True)
class CvTStageConfig:
    dim: int  # token width C of the stage
    depth: int  # Transformer blocks
    num_heads: int
    patch_size: int = 3  # kernel of the convolutional token embedding: larger than the stride, so patches overlap
    patch_stride: int = 2  # downsampling of the map by this stage
    patch_padding: int = 1
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    kernel_qkv: int = 3  # depthwise kernel of the convolutional projection (padding kernel // 2)
    stride_q: int = 1
    stride_kv: int = 2  # key/value grid is stride_kv² times smaller: the paper's cheap "squeezed" attention

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"CvT stage: dim={self.dim} must be divisible by num_heads={self.num_heads}")
        if min(self.depth, self.patch_size, self.patch_stride, self.kernel_qkv, self.stride_q, self.stride_kv) < 1:
            raise ValueError(f"CvT stage: depth, kernels and strides must be ≥ 1, got {self}")


@dataclass(frozen=True)
class CvTConfig:
    stages: tuple[CvTStageConfig, ...]  # dicts are accepted (from YAML) and turned into CvTStageConfig
    img_size: int = 224  # training resolution (for FLOP counts); the model accepts any size the strides allow
    in_chans: int = 3
    num_classes: int = 1000  # 0 gives a model without head (features only)
    class_token: bool = True  # in the last stage; False pools the mean of the last stage's tokens instead
    drop_rate: float = 0.0  # dropout after each token embedding, in the MLPs, after attention and before the head
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0  # stochastic depth, rising linearly from 0 over the blocks in `drop_path_scope`
    drop_path_scope: Literal["last_stage", "all"] = "last_stage"  # official recipe: last stage only
    act_layer: Literal["gelu", "quick_gelu"] = "gelu"  # quick_gelu (x·σ(1.702x)) reproduces official weights exactly
    attn_scale: Literal["dim", "head_dim"] = "dim"  # official CvT scales scores by dim^-0.5; its weights need that
    fused_attn: bool = True  # SDPA; False uses the reference attention path
    recompute_act: bool = True  # MLP activation recomputed in backward: ~20% less training memory, same gradients

    def __post_init__(self) -> None:
        stages = tuple(CvTStageConfig(**s) if isinstance(s, dict) else s for s in self.stages)
        if not stages or not all(isinstance(s, CvTStageConfig) for s in stages):
            raise ValueError(f"CvTConfig.stages must be a non-empty tuple of CvTStageConfig (or dicts), got {stages}")
        object.__setattr__(self, "stages", stages)
        if self.drop_path_scope not in ("last_stage", "all"):
            raise ValueError(f"drop_path_scope must be 'last_stage' or 'all', got {self.drop_path_scope!r}")
        if self.act_layer not in ("gelu", "quick_gelu") or self.attn_scale not in ("dim", "head_dim"):
            raise ValueError(f"unknown act_layer {self.act_layer!r} or attn_scale {self.attn_scale!r}")

    def block_drop_path_rates(self) -> list[list[float]]:
        """Stochastic-depth rate of every block, stage by stage."""
        depths = [s.depth for s in self.stages]
        if self.drop_path_scope == "all":
            flat = drop_path_rates(self.drop_path_rate, sum(depths))
            return [flat[sum(depths[:i]): sum(depths[: i + 1])] for i in range(len(depths))]
        return [[0.0] * d for d in depths[:-1]] + [drop_path_rates(self.drop_path_rate, depths[-1])]


class QuickGELU(nn.Module):
    """``x · σ(1.702 x)``, the GELU approximation the official CvT was trained with."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class ConvProjection(nn.Module):
    """Token map ``(B, C, h, w)`` → depthwise conv + BatchNorm → tokens ``(B, h'·w', C)``, ``h' = ⌈h / stride⌉``."""

    def __init__(self, dim: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel_size, stride=stride, padding=kernel_size // 2, groups=dim, bias=False)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x)).flatten(2).transpose(1, 2)  # (B, C, h', w') → (B, h'·w', C)


class CvTBlock(nn.Module):
    """Pre-norm block: ``x + attn(conv_q(n), conv_k(n), conv_v(n))`` with ``n = norm1(x)``, then ``x + mlp(norm2(x))``.

    Tokens ``(B, P + h·w, C)``: ``P`` (0 or 1) class tokens first, then the map in row-major order.
    """

    def __init__(self, cfg: CvTStageConfig, model: CvTConfig, *, drop_path: float) -> None:
        super().__init__()
        dim = cfg.dim
        scale = dim**-0.5 if model.attn_scale == "dim" else None
        self.norm1 = nn.LayerNorm(dim)
        self.conv_q = ConvProjection(dim, cfg.kernel_qkv, cfg.stride_q)
        self.conv_k = ConvProjection(dim, cfg.kernel_qkv, cfg.stride_kv)
        self.conv_v = ConvProjection(dim, cfg.kernel_qkv, cfg.stride_kv)
        self.attn = Attention(dim, cfg.num_heads, qkv_bias=cfg.qkv_bias, attn_drop=model.attn_drop_rate,
                              proj_drop=model.drop_rate, fused=model.fused_attn, scale=scale)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        act = QuickGELU if model.act_layer == "quick_gelu" else nn.GELU
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio), act_layer=act, drop=model.drop_rate,
                       recompute_act=model.recompute_act)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, grid: tuple[int, int], num_prefix_tokens: int) -> Tensor:
        x = x + self.drop_path1(self._attend(self.norm1(x), grid, num_prefix_tokens))
        return x + self.drop_path2(self.mlp(self.norm2(x)))

    def _attend(self, x: Tensor, grid: tuple[int, int], P: int) -> Tensor:
        fmap = x[:, P:].unflatten(1, grid).permute(0, 3, 1, 2)  # (B, C, h, w), a channels-last view: no copy
        q, k, v = self.conv_q(fmap), self.conv_k(fmap), self.conv_v(fmap)  # (B, h·w, C), 2 × (B, h'·w', C)
        if P:
            prefix = x[:, :P]
            q, k, v = (torch.cat([prefix, t], dim=1) for t in (q, k, v))  # (B, P + …, C)
        return self.attn(q, k, v)


class CvTStage(nn.Module):
    """Map ``(B, C_in, H, W)`` → tokens ``(B, P + h·w, C)`` and their grid ``(h, w)``."""

    def __init__(self, cfg: CvTStageConfig, model: CvTConfig, in_chans: int, *, class_token: bool,
                 drop_paths: list[float]) -> None:
        super().__init__()
        self.patch_embed = ConvEmbed(in_chans, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_stride,
                                     padding=cfg.patch_padding)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim)) if class_token else None
        self.embed_drop = nn.Dropout(model.drop_rate)
        self.blocks = nn.ModuleList(CvTBlock(cfg, model, drop_path=p) for p in drop_paths)
        self.grad_checkpointing = False  # set by CvT.set_grad_checkpointing

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.cls_token is not None)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        x, grid = self.patch_embed(x)  # (B, h·w, C)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + h·w, C)
        x = self.embed_drop(x)
        for block in self.blocks:
            x = run_block(block, x, grid, self.num_prefix_tokens, checkpoint=self.grad_checkpointing)
        return x, grid


class CvT(nn.Module):
    """CvT classifier: ``forward(images (B, C_in, H, W)) -> logits (B, num_classes)``, which is
    ``forward_head(forward_features(images))``.

    ``forward_features`` returns the last stage's normalised tokens ``(B, P + h·w, C)`` (``P`` = 1 with the class
    token); ``forward_head`` takes the class token (or the mean of the map tokens) and applies the head.
    """

    def __init__(self, config: CvTConfig) -> None:
        super().__init__()
        self.config = cfg = config
        last = len(cfg.stages) - 1
        in_chans = [cfg.in_chans] + [s.dim for s in cfg.stages[:-1]]
        self.stages = nn.ModuleList(
            CvTStage(s, cfg, c, class_token=cfg.class_token and i == last, drop_paths=dpr)
            for i, (s, c, dpr) in enumerate(zip(cfg.stages, in_chans, cfg.block_drop_path_rates(), strict=True))
        )
        self.norm = nn.LayerNorm(self.num_features)
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.head = nn.Linear(self.num_features, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self.init_weights()

    @property
    def num_features(self) -> int:
        return self.config.stages[-1].dim

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.config.class_token)

    def init_weights(self) -> None:
        """Truncated-normal(0.02) linears and class token, zero biases (official CvT); convs keep PyTorch's init."""
        trunc_normal_linears_(self)
        for stage in self.stages:
            if stage.cls_token is not None:
                nn.init.trunc_normal_(stage.cls_token, std=0.02)

    def no_weight_decay(self) -> set[str]:
        """Parameters exempt from weight decay besides biases and norms."""
        return {"cls_token"}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass instead of storing its activations (``layers.checkpointing``)."""
        for stage in self.stages:
            stage.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False):
        """Depth ordinal of a parameter name, in timm's callable form (layer-wise lr decay, ``timm.optim``): the
        input embedding first, then every block in order — a stage's embedding (and class token) sharing its
        first block's — then the final norm and the head."""

        def ordinal(name: str) -> tuple[int, ...]:
            m = re.match(r"stages\.(\d+)\.(?:blocks\.(\d+)\.)?", name)
            if m is None:
                return (2,)  # final norm, head
            stage, block = int(m.group(1)), m.group(2)
            if block is None:  # the stage's embedding or class token
                return (0,) if stage == 0 else (1, stage, 0)
            return (1, stage, int(block))

        return ordinal

    def get_classifier(self) -> nn.Module:
        """The head (``nn.Identity`` without one), as timm's models expose it."""
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised head for ``num_classes`` classes (0: none); the config follows."""
        self.config = dataclasses.replace(self.config, num_classes=num_classes)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.head.to(self.norm.weight)
        trunc_normal_linears_(self.head)

    def forward_features(self, x: Tensor) -> Tensor:
        """Images ``(B, C_in, H, W)`` → the last stage's normalised tokens ``(B, P + h·w, C)``."""
        x, grid = self.stages[0](x)  # (B, h·w, C)
        for stage in self.stages[1:]:  # only the last stage may have a class token
            fmap = x.unflatten(1, grid).permute(0, 3, 1, 2)  # (B, C, h, w), a channels-last view: no copy
            x, grid = stage(fmap)  # (B, P + h·w, C)
        return self.norm(x)

    def forward_intermediates(self, x: Tensor, indices: int | list[int] | None = None, *, norm: bool = False,
                              stop_early: bool = False, output_fmt: Literal["NCHW", "NLC"] = "NCHW",
                              intermediates_only: bool = False) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """timm's feature-extraction call over the stages (a pyramid: strides 4, 8, 16 for the ImageNet presets):
        the token maps of stages ``indices`` (``layers.intermediates``), class token dropped, as ``(B, C, h, w)``
        (``NCHW``) or ``(B, h·w, C)`` (``NLC``); ``norm`` applies the final norm to the last stage's (the only one of
        its width). Returns them, after ``forward_features``'s output unless ``intermediates_only`` (``stop_early``
        then skips the stages past the last one taken)."""
        take = take_indices(len(self.stages), indices)
        last = take[-1] if stop_early and intermediates_only else len(self.stages) - 1
        outputs = []
        for i, stage in enumerate(self.stages[: last + 1]):
            x, grid = stage(x)  # (B, P + h·w, C)
            P = stage.num_prefix_tokens
            if i in take:
                y = (self.norm(x) if norm and i == len(self.stages) - 1 else x)[:, P:]  # (B, h·w, C)
                outputs.append(y.unflatten(1, grid).permute(0, 3, 1, 2) if output_fmt == "NCHW" else y)  # (B, C, h, w)
            if i < last:
                x = x[:, P:].unflatten(1, grid).permute(0, 3, 1, 2)  # (B, C, h, w): the next stage's input map
        return outputs if intermediates_only else (self.norm(x), outputs)

    def forward_head(self, x: Tensor, *, pre_logits: bool = False) -> Tensor:
        x = x[:, 0] if self.config.class_token else x.mean(dim=1)  # (B, C)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _stages(dims, depths, heads, *, first: tuple[int, int, int] = (7, 4, 2), **common) -> tuple[CvTStageConfig, ...]:
    """Stages with the given widths/depths/heads; the first embeds with ``first`` = (kernel, stride, padding)."""
    k, s, p = first
    out = [CvTStageConfig(dims[0], depths[0], heads[0], patch_size=k, patch_stride=s, patch_padding=p, **common)]
    out += [CvTStageConfig(d, n, h, **common) for d, n, h in zip(dims[1:], depths[1:], heads[1:], strict=True)]
    return tuple(out)


def _with(stages: tuple[CvTStageConfig, ...], index: int, **changes) -> tuple[CvTStageConfig, ...]:
    return tuple(dataclasses.replace(s, **changes) if i == index else s for i, s in enumerate(stages))


# CIFAR (32×32): a stride-2 first embedding keeps 16×16 tokens; the 4×4 last stage attends to all 16 tokens.
_CIFAR_13 = _with(_stages((64, 192, 384), (1, 2, 10), (1, 3, 6), first=(3, 2, 1)), 2, stride_kv=1)
_CIFAR_SMALL = _with(_stages((64, 128, 256), (1, 2, 6), (1, 2, 4), first=(3, 2, 1)), 2, stride_kv=1)

PRESETS = {
    # ImageNet presets, identical in shape and parameter count to the paper's (and Hugging Face's) models.
    "cvt_13": CvTConfig(_stages((64, 192, 384), (1, 2, 10), (1, 3, 6)), drop_path_rate=0.1),
    "cvt_21": CvTConfig(_stages((64, 192, 384), (1, 4, 16), (1, 3, 6)), drop_path_rate=0.1),
    "cvt_w24": CvTConfig(_stages((192, 768, 1024), (2, 2, 20), (3, 12, 16)), drop_path_rate=0.3),
    # CIFAR-sized: 32×32 → 16×16 → 8×8 → 4×4 tokens, 10 classes, mean-pooled (no class token on small data).
    "cvt_13_32": CvTConfig(_CIFAR_13, img_size=32, num_classes=10, class_token=False, drop_path_rate=0.1),
    "cvt_small_32": CvTConfig(_CIFAR_SMALL, img_size=32, num_classes=10, class_token=False, drop_path_rate=0.1),
    # scikit-learn digits: 8×8 grey images; 8×8 tokens (keys/values 4×4), then 4×4 tokens attending to all.
    "cvt_digits": CvTConfig(
        (CvTStageConfig(32, 1, 1, patch_size=3, patch_stride=1, patch_padding=1, mlp_ratio=2.0),
         CvTStageConfig(64, 3, 2, mlp_ratio=2.0, stride_kv=1)),
        img_size=8, in_chans=1, num_classes=10, class_token=False,
    ),
    # For tests: two narrow stages, class token in the second.
    "cvt_test": CvTConfig(
        (CvTStageConfig(16, 1, 1, patch_size=7, patch_stride=4, patch_padding=2), CvTStageConfig(32, 2, 2)),
        img_size=32, num_classes=10,
    ),
}

MODEL = CvT
DESCRIPTIONS = {
    "cvt_13": "CvT-13 (Wu et al. 2021), 20M params",
    "cvt_21": "CvT-21 (Wu et al. 2021), 32M params",
    "cvt_w24": "CvT-W24 (Wu et al. 2021), 277M params",
    "cvt_13_32": "CvT-13 widths at 32×32 (CIFAR)",
    "cvt_small_32": "small CvT at 32×32 (CIFAR)",
    "cvt_digits": "two-stage CvT for 8×8 digits",
    "cvt_test": "tiny, for tests",
}
