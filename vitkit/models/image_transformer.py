"""Image Transformer (Parmar et al. 2018): an autoregressive Transformer decoder over sub-pixels.

An image ``(C, H, W)`` of 8-bit intensities is a sequence of ``N = H·W·C`` sub-pixels — channels are separate
positions, so 32×32×3 gives 3,072 — modelled as ``p(x) = Π_t p(x_t | x_<t)`` (eq. 1) with a 256-way categorical per
sub-pixel. The input at position ``t`` is the embedding of ``x_{t-1}`` (one 256-entry table per channel, §3.1; a
learned start vector at ``t = 0``), so the output at ``t`` predicts ``x_t`` from ``x_<t`` only. Added to it: learned
row, column and channel embeddings of position ``t`` (what is being predicted) and, for class-conditional models, a
class embedding at every position — with local attention a class signal given only at the start would never reach
the later blocks.

Self-attention (§3.3), chosen by ``attention``:
- ``local_1d``: raster order; query blocks of ``block_size`` positions see themselves (causally) and the
  ``memory_flange`` positions before them (t2t's CIFAR-10 setting: blocks of 256, memory 512).
- ``local_2d``: the sub-pixels form an ``(H, W·C)`` grid (a pixel's channels side by side, as tensor2tensor lays
  them out), tiled by ``block_shape`` query blocks with a ``flange_shape`` above, left and right. Generation follows
  the paper: block after block in raster order, raster order inside each block ("block-raster"). So a query block is
  a contiguous run of the sequence — the block-wise computation is a reshape, the sampling cache a sliding window —
  and the right flange gives context above-right that plain raster order would leave out of a rectangular memory.
  Sequences in this variant (``to_sequence``, ``forward_sequence``, sampling) are in block-raster order.
- ``global``: full causal attention (SDPA's causal kernel), the quadratic baseline.
Local attention runs block by block on the shared ``Attention`` (``vitkit.layers.local_attention``): N·M, not N².
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from vitkit.errors import ConfigError
from vitkit.layers import Attention, KVCache, Mlp
from vitkit.layers.checkpointing import run_block
from vitkit.layers.init import trunc_normal_linears_
from vitkit.layers.local_attention import LocalLayout, block_raster_order

NUM_LEVELS = 256  # 8-bit intensities: the categorical has 256 classes

Attend = Callable[[Attention, Tensor], Tensor]


@dataclass(frozen=True)
class ImageTransformerConfig:
    img_size: int = 32
    in_chans: int = 3
    num_classes: int = 0  # > 0: class-conditional (a learned class embedding added at every position)
    dim: int = 512
    depth: int = 12
    num_heads: int = 4
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    attention: Literal["local_1d", "local_2d", "global"] = "local_1d"
    block_size: int = 256  # local_1d: query block length l_q; must divide H·W·C
    memory_flange: int = 256  # local_1d: positions before the block that its queries also see (memory = l_q + this)
    block_shape: tuple[int, int] = (8, 24)  # local_2d: query block (rows, sub-pixel columns) on the (H, W·C) grid
    flange_shape: tuple[int, int] = (8, 24)  # local_2d: memory rows above, sub-pixel columns left and right
    norm_first: bool = True  # False: post-norm ("dropout, add, norm"), t2t's best CIFAR-10 setting
    drop_rate: float = 0.0  # dropout on the embeddings and on every residual branch (t2t: 0.3 on CIFAR-10)
    attn_drop_rate: float = 0.0
    fused_attn: bool = True  # SDPA; False uses the reference attention path

    def __post_init__(self) -> None:
        for name in ("block_shape", "flange_shape"):  # YAML gives lists
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.attention not in ("local_1d", "local_2d", "global"):
            raise ConfigError(f"attention={self.attention!r}", "choose 'local_1d', 'local_2d' or 'global'")
        if self.dim % self.num_heads:
            raise ConfigError(f"dim={self.dim} must be divisible by num_heads={self.num_heads}",
                              "change dim or num_heads (model_kwargs)")
        n, width = self.img_size * self.img_size * self.in_chans, self.img_size * self.in_chans
        if self.attention == "local_1d" and (self.block_size <= 0 or n % self.block_size):
            divisors = [d for d in range(1, n + 1) if n % d == 0 and d >= 8][:8]
            raise ConfigError(f"local_1d: block_size={self.block_size} must divide the sequence length "
                              f"H·W·C = {n}", f"use a divisor, for example one of {divisors}")
        if self.attention == "local_2d":
            bh, bw = self.block_shape
            if bh <= 0 or bw <= 0 or self.img_size % bh or width % bw or bw % self.in_chans:
                raise ConfigError(f"local_2d: block_shape={self.block_shape} must tile the {self.img_size}×{width} "
                                  f"grid of sub-pixels (rows, W·C columns) with a width that is a multiple of "
                                  f"in_chans={self.in_chans}", "pick block rows dividing the image height and "
                                  "columns dividing W·C, a multiple of in_chans (a pixel's channels share a block)")

    @property
    def seq_len(self) -> int:
        return self.img_size * self.img_size * self.in_chans


class DecoderLayer(nn.Module):
    """Self-attention and MLP as residual branches, pre- or post-norm. The attention pattern comes in as ``attend``.

    ``attend(attn, h)`` applies ``attn`` to ``h`` ``(B, N, C)``: block-wise local, global causal, or one cached step.
    """

    def __init__(self, cfg: ImageTransformerConfig) -> None:
        super().__init__()
        self.norm_first = cfg.norm_first
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = Attention(cfg.dim, cfg.num_heads, qkv_bias=cfg.qkv_bias, attn_drop=cfg.attn_drop_rate,
                              proj_drop=cfg.drop_rate, fused=cfg.fused_attn)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.mlp = Mlp(cfg.dim, int(cfg.dim * cfg.mlp_ratio), drop=cfg.drop_rate)

    def forward(self, x: Tensor, attend: Attend) -> Tensor:
        if self.norm_first:
            x = x + attend(self.attn, self.norm1(x))
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + attend(self.attn, x))
        return self.norm2(x + self.mlp(x))


class ImageTransformer(nn.Module):
    """``forward(images (B, C, H, W) ints in [0, 255], y (B,) | None) -> logits (B, 256, C, H, W)``.

    ``forward_sequence(tokens (B, n), y)`` is the same over the first ``n`` positions in generation order, returning
    ``(B, n, 256)``; ``step`` computes one position with a KV cache per layer (``init_caches``), for sampling.
    """

    def __init__(self, config: ImageTransformerConfig) -> None:
        super().__init__()
        self.config = cfg = config
        H, W, C = cfg.img_size, cfg.img_size, cfg.in_chans
        self.seq_len = N = cfg.seq_len
        order = torch.arange(N, device="cpu")  # raster index of each generation position (CPU even under meta)
        self.local: LocalLayout | None = None  # None: global causal attention
        if cfg.attention == "local_2d":
            order = block_raster_order((H, W * C), cfg.block_shape)
            self.local = LocalLayout.two_d((H, W * C), cfg.block_shape, cfg.flange_shape)
        elif cfg.attention == "local_1d":
            self.local = LocalLayout.one_d(N, cfg.block_size, cfg.memory_flange)
        self.register_buffer("order", order, persistent=False)  # (N,) into the (H, W, C) raster
        self.register_buffer("chan_idx", order % C, persistent=False)
        self.register_buffer("row_idx", order // (W * C), persistent=False)
        self.register_buffer("col_idx", order // C % W, persistent=False)
        self.tok_embed = nn.Embedding(C * NUM_LEVELS, cfg.dim)  # one 256-entry table per channel
        self.start = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.row_embed = nn.Embedding(H, cfg.dim)
        self.col_embed = nn.Embedding(W, cfg.dim)
        self.chan_embed = nn.Embedding(C, cfg.dim)
        self.class_embed = nn.Embedding(cfg.num_classes, cfg.dim) if cfg.num_classes > 0 else None
        self.drop = nn.Dropout(cfg.drop_rate)
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.dim) if cfg.norm_first else nn.Identity()  # post-norm layers end normalised
        self.head = nn.Linear(cfg.dim, NUM_LEVELS)
        self.grad_checkpointing = False
        self.init_weights()

    def init_weights(self) -> None:
        """Normal(0.02) tables and start vector, truncated-normal(0.02) linears with zero biases."""
        trunc_normal_linears_(self)
        for m in self.modules():
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
        nn.init.normal_(self.start, std=0.02)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each layer in the backward pass instead of storing its activations (``layers.checkpointing``)."""
        self.grad_checkpointing = enable

    def no_weight_decay(self) -> set[str]:
        names = {"start", "tok_embed.weight", "row_embed.weight", "col_embed.weight", "chan_embed.weight"}
        return names | ({"class_embed.weight"} if self.class_embed is not None else set())

    # -- layout ------------------------------------------------------------------------------------------------
    def to_sequence(self, images: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` → sub-pixel tokens ``(B, N)`` (long) in generation order; checks shape and range."""
        self._check_images(images)
        B = images.shape[0]
        return images.long().permute(0, 2, 3, 1).reshape(B, self.seq_len)[:, self.order]  # (B, N)

    def from_sequence(self, seq: Tensor) -> Tensor:
        """``(B, N, *rest)`` in generation order → ``(B, *rest, C, H, W)`` (tokens → images, logits → logits)."""
        C, H = self.config.in_chans, self.config.img_size
        raster = torch.empty_like(seq)
        raster[:, self.order] = seq  # (B, N, *rest) in (H, W, C) raster order
        x = raster.reshape(seq.shape[0], H, H, C, *seq.shape[2:])  # (B, H, W, C, *rest)
        dims = list(range(4, x.ndim))
        return x.permute(0, *dims, 3, 1, 2)  # (B, *rest, C, H, W)

    def _check_images(self, images: Tensor) -> None:
        C, H = self.config.in_chans, self.config.img_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (C, H, H):
            raise ValueError(f"expected images of shape (B, {C}, {H}, {H}) (in_chans={C}, img_size={H}), got "
                             f"{tuple(images.shape)}")
        if torch.compiler.is_exporting():  # the value checks below branch on data, which an exported graph cannot
            return  # keep: the exported model's caller passes whole intensities in [0, 255]
        if images.is_floating_point() and images.numel() and not torch.equal(images, images.round()):
            raise TypeError(f"expected integer intensities in [0, 255] (uint8 or long), got {images.dtype} values "
                            "that are not whole numbers (normalised images?); the generation datamodule yields uint8 "
                            "images without normalisation")
        low, high = (int(images.min()), int(images.max())) if images.numel() else (0, 0)
        if low < 0 or high >= NUM_LEVELS:
            raise ValueError(f"intensities must lie in [0, 255], found [{low}, {high}]")

    def _check_labels(self, y: Tensor | None, batch: int) -> None:
        k = self.config.num_classes
        if k == 0 and y is not None:
            raise ValueError("this model is unconditional (num_classes=0) but class labels were given")
        if k > 0 and torch.compiler.is_exporting():  # no branch on the labels' values in an exported graph
            return
        if k > 0 and (y is None or y.shape != (batch,) or y.min() < 0 or y.max() >= k):
            got = None if y is None else f"{tuple(y.shape)} in [{int(y.min())}, {int(y.max())}]"
            raise ValueError(f"this model is class-conditional: give labels y of shape ({batch},) in [0, {k}), "
                             f"got {got}")

    # -- embedding ---------------------------------------------------------------------------------------------
    def _positions(self, start: int, stop: int) -> Tensor:
        sl = slice(start, stop)
        rows, cols, chans = self.row_idx[sl], self.col_idx[sl], self.chan_idx[sl]
        return self.row_embed(rows) + self.col_embed(cols) + self.chan_embed(chans)  # (n, C)

    def embed(self, tokens: Tensor, y: Tensor | None = None) -> Tensor:
        """Decoder input ``(B, n, C)``: position ``t`` holds ``x_{t-1}`` (start vector at 0) + position ``t`` info."""
        B, n = tokens.shape
        prev = self.tok_embed(tokens[:, :-1] + NUM_LEVELS * self.chan_idx[: n - 1])  # (B, n - 1, C)
        x = torch.cat([self.start.expand(B, -1, -1), prev], dim=1)  # (B, n, C): shifted right by one
        x = x + self._positions(0, n)
        if self.class_embed is not None:
            x = x + self.class_embed(y)[:, None]  # (B, 1, C) broadcast over positions
        return self.drop(x)

    # -- full-sequence computation ----------------------------------------------------------------------------
    def forward_sequence(self, tokens: Tensor, y: Tensor | None = None) -> Tensor:
        """Logits ``(B, n, 256)`` for tokens ``(B, n)`` in generation order, ``1 <= n <= N``."""
        B, n = tokens.shape
        if not 1 <= n <= self.seq_len:
            raise ValueError(f"sequence length {n} outside [1, {self.seq_len}] (H·W·C of this model)")
        self._check_labels(y, B)
        x = self.embed(tokens, y)
        if self.local is not None and n % self.local.block_size:  # finish the last block; causality keeps
            pad = self.local.block_size - n % self.local.block_size  # the padding out of positions < n
            x = torch.cat([x, x.new_zeros(B, pad, x.shape[2])], dim=1)  # (B, n', C)
        for layer in self.layers:
            x = run_block(layer, x, self._attend, checkpoint=self.grad_checkpointing)
        return self.head(self.norm(x[:, :n]))  # (B, n, 256)

    def _attend(self, attn: Attention, h: Tensor) -> Tensor:
        if self.local is None:
            return attn(h, is_causal=True)
        return self.local(attn, h)

    def forward(self, images: Tensor, y: Tensor | None = None) -> Tensor:
        logits = self.forward_sequence(self.to_sequence(images), y)  # (B, N, 256)
        return self.from_sequence(logits)  # (B, 256, C, H, W)

    # -- incremental computation (sampling) ----------------------------------------------------------------------
    def init_caches(self) -> list[KVCache]:
        """One KV cache per layer, keeping only the last ``window`` positions local attention can still see."""
        window = self.local.window if self.local is not None else None
        return [KVCache(window=window) for _ in self.layers]

    def step(self, prev: Tensor, t: int, caches: list[KVCache], y: Tensor | None = None) -> Tensor:
        """Logits ``(B, 256)`` for position ``t`` given ``prev`` = ``x_{t-1}`` ``(B,)`` (unused at ``t = 0``).

        Steps must run in order ``t = 0, 1, ...`` on the same caches; equals ``forward_sequence(x)[:, t]``.
        """
        if t == 0:
            x = self.start.expand(prev.shape[0], -1, -1)  # (B, 1, C)
        else:
            x = self.tok_embed(prev + NUM_LEVELS * self.chan_idx[t - 1])[:, None]  # (B, 1, C)
        x = x + self._positions(t, t + 1)
        if self.class_embed is not None:
            x = x + self.class_embed(y)[:, None]
        x = self.drop(x)
        mask = None  # global: every cached key is visible
        if self.local is not None and self.local.contiguous:  # keep exactly what position t sees
            for cache in caches:
                cache.drop_before(self.local.first_visible[t])
        elif self.local is not None:
            mask = self.local.step_mask(t, caches[0].offset)  # (1, Nk) over the cached positions
        for layer, cache in zip(self.layers, caches, strict=True):
            x = layer(x, lambda attn, h, cache=cache: attn(h, mask=mask, cache=cache))
        return self.head(self.norm(x))[:, 0]  # (B, 256)


PRESETS = {
    # t2t's `imagetransformer_cifar10_base`, reported at 2.90 bits/dim: 12 post-norm layers of width 512, 4 heads,
    # FFN 2048, dropout 0.3, 1-D local attention with query blocks of 256 and a memory of 512.
    "image_transformer_cifar10": ImageTransformerConfig(
        dim=512, depth=12, num_heads=4, mlp_ratio=4.0, block_size=256, memory_flange=256, norm_first=False,
        drop_rate=0.3,
    ),
    # ImageNet 32×32 (paper: 3.77 bits/dim with 1-D local attention); t2t's larger ImageNet hparams
    # (width 1024, 16 heads, FFN 4096, 10 layers, dropout 0.1) with the CIFAR block/memory shape.
    "image_transformer_imagenet32": ImageTransformerConfig(
        dim=1024, depth=10, num_heads=16, mlp_ratio=4.0, block_size=256, memory_flange=256, norm_first=False,
        drop_rate=0.1,
    ),
    # scikit-learn digits, 8×8×1 = 64 positions: small enough that a memory of 48 spans six rows.
    "image_transformer_digits": ImageTransformerConfig(
        img_size=8, in_chans=1, dim=128, depth=4, num_heads=4, mlp_ratio=4.0, block_size=16, memory_flange=32,
        block_shape=(2, 4), flange_shape=(2, 4), drop_rate=0.1,
    ),
    # For tests: 4×4×3 = 48 positions, two narrow layers, 8-position blocks (switch `attention` in overrides).
    "image_transformer_test": ImageTransformerConfig(
        img_size=4, in_chans=3, dim=32, depth=2, num_heads=2, mlp_ratio=2.0, block_size=8, memory_flange=8,
        block_shape=(2, 6), flange_shape=(1, 3),
    ),
}

MODEL = ImageTransformer
DESCRIPTIONS = {
    "image_transformer_cifar10": "Image Transformer, CIFAR-10 1D-local setting (Parmar et al. 2018)",
    "image_transformer_imagenet32": "Image Transformer for ImageNet 32×32, 1D local",
    "image_transformer_digits": "Image Transformer for 8×8 digits",
    "image_transformer_test": "tiny, for tests",
}
