"""Multi-head attention, the only ``softmax(Q Kᵀ / √d) V`` in vitkit (Vaswani et al. 2017, eq. 1).

Every family calls it: ViT ``attn(x)``; the Image Transformer ``attn(x, mask=..., cache=...)``; DETR
``attn(tgt + qpos, tgt + qpos, tgt)`` and ``attn(tgt + qpos, mem + pos, mem, mask=...)``; CvT
``attn(conv_q(x), conv_k(x), conv_v(x))``.

Two paths compute the same thing, chosen per instance with ``fused``: PyTorch's
``scaled_dot_product_attention`` (flash / memory-efficient kernels) and an explicit reference that
materialises the weights. The reference path is the one that can return the weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitkit.layers.masks import causal as causal_mask
from vitkit.layers.masks import combine


class KVCache:
    """Keys and values of past positions, for incremental decoding.

    ``update`` appends the new keys/values and returns everything held. ``window`` keeps only the last
    ``window`` positions (a local-attention model never looks further back), and ``drop_before`` drops an
    explicit prefix; ``offset`` is the absolute position of the first key still held.

    Outside autograd the keys live in a buffer with spare room that new positions are written into, so a decoding
    step costs O(new) instead of re-concatenating the whole history (that copy dominated sampling time); the returned
    tensors are views, valid until the next ``update``. When the new keys need gradients they are concatenated, as
    writing in place would invalidate the graph of earlier steps.
    """

    def __init__(self, window: int | None = None) -> None:
        self.window = window
        self._k: Tensor | None = None  # (B, nh, capacity, hd); held positions occupy [_start, _end)
        self._v: Tensor | None = None
        self._start = self._end = 0
        self.offset = 0

    @property
    def k(self) -> Tensor | None:
        return None if self._k is None else self._k[:, :, self._start : self._end]  # (B, nh, L, hd)

    @property
    def v(self) -> Tensor | None:
        return None if self._v is None else self._v[:, :, self._start : self._end]

    def __len__(self) -> int:
        return self._end - self._start

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        n = k.shape[2]
        if torch.is_grad_enabled() and (k.requires_grad or v.requires_grad):
            self._k, self._v = (x if self._k is None else torch.cat([held, x], dim=2)
                                for held, x in ((self.k, k), (self.v, v)))  # (B, nh, L + n, hd)
            self._start, self._end = 0, self._k.shape[2]
        else:
            if self._k is None or self._end + n > self._k.shape[2]:
                self._reallocate(k, v, n)
            self._k[:, :, self._end : self._end + n] = k
            self._v[:, :, self._end : self._end + n] = v
            self._end += n
        k_all, v_all = self.k, self.v
        if self.window is not None and len(self) > self.window:
            self.drop_before(self.offset + len(self) - self.window)
        return k_all, v_all

    def _reallocate(self, k: Tensor, v: Tensor, n: int) -> None:
        """Move the held positions to the front of a new buffer with room for about as many again."""
        held = len(self)
        capacity = 2 * (held + n) + 16
        buffers = []
        for old, new in ((self.k, k), (self.v, v)):
            buf = new.new_empty(*new.shape[:2], capacity, new.shape[3])  # (B, nh, capacity, hd)
            if held:
                buf[:, :, :held] = old
            buffers.append(buf)
        self._k, self._v = buffers
        self._start, self._end = 0, held

    def drop_before(self, position: int) -> None:
        """Forget keys/values at absolute positions ``< position``."""
        n = position - self.offset
        if n > 0:
            self._start = min(self._start + n, self._end)
            self.offset = position


class Attention(nn.Module):
    """Multi-head attention over batch-first tokens.

    The input projections are one ``qkv`` linear of shape ``(3C, C)`` (timm's layout): self-attention uses it as
    one matmul; with separate query/key/value inputs its three row blocks project each input.

    Args:
        dim: token width ``C``.
        num_heads: heads ``nh``; ``C`` must be divisible by it.
        qkv_bias: bias on the input projections.
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the output projection.
        fused: use ``scaled_dot_product_attention``; ``False`` selects the reference path.
        scale: multiplier of the scores ``Q Kᵀ``; default ``head_dim ** -0.5``. (The official CvT scales by
            ``dim ** -0.5``; its checkpoints need that.)
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        *,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        fused: bool = True,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5 if scale is None else scale
        self.fused = fused
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.record: list[Tensor] | None = None  # set by `capture_attention` to collect weights

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attend from ``query`` ``(B, Nq, C)`` to ``key`` ``(B, Nk, C)`` / ``value`` ``(B, Nk, C)``.

        ``key`` defaults to ``query`` and ``value`` to ``key``. ``mask`` is boolean, ``True`` = may attend,
        broadcastable to ``(B, nh, Nq, Nk)``; ``is_causal`` adds a bottom-right aligned causal mask (correct with a
        cache). A query whose keys are all masked gets a zero output. Returns ``(B, Nq, C)``, and the weights
        ``(B, nh, Nq, Nk)`` too when ``need_weights``.
        """
        q, k, v = self._project(query, key, value)  # each (B, nh, N, hd)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, nh, Nk, hd)
        want_weights = need_weights or self.record is not None
        if is_causal and (mask is not None or q.shape[2] != k.shape[2] or want_weights or not self.fused):
            mask, is_causal = combine(mask, causal_mask(q.shape[2], k.shape[2], device=q.device)), False
        if self.fused and not want_weights:
            x, weights = self._fused(q, k, v, mask, is_causal), None
        else:
            x, weights = self._reference(q, k, v, mask)
        B, nh, Nq, hd = x.shape
        x = x.transpose(1, 2).reshape(B, Nq, nh * hd)  # (B, Nq, C)
        x = self.proj_drop(self.proj(x))
        if self.record is not None:
            self.record.append(weights.detach())
        return (x, weights) if need_weights else x

    def _project(self, query: Tensor, key: Tensor | None, value: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        B, Nq, C = query.shape
        key = query if key is None else key
        value = key if value is None else value
        w, b = self.qkv.weight, self.qkv.bias
        if key is query and value is query:  # self-attention: one matmul
            qkv = F.linear(query, w, b).reshape(B, Nq, 3, self.num_heads, self.head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 × (B, nh, N, hd)
            return q, k, v
        def rows(start: int, stop: int) -> tuple[Tensor, Tensor | None]:  # blocks of the (3C, C) projection
            return w[start * C : stop * C], None if b is None else b[start * C : stop * C]

        if key is query:  # DETR self-attention: queries and keys share their input, one matmul for both
            q, k = F.linear(query, *rows(0, 2)).chunk(2, dim=-1)
            v = F.linear(value, *rows(2, 3))
        elif key is value:  # keys and values share their input (local blocks, a query subset): one matmul
            q = F.linear(query, *rows(0, 1))
            k, v = F.linear(key, *rows(1, 3)).chunk(2, dim=-1)
        else:
            q, k, v = (F.linear(t, *rows(i, i + 1)) for i, t in enumerate((query, key, value)))
        return self._heads(q), self._heads(k), self._heads(v)

    def _heads(self, x: Tensor) -> Tensor:
        B, N, _ = x.shape
        return x.view(B, N, self.num_heads, self.head_dim).transpose(1, 2)  # (B, nh, N, hd)

    def _fused(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, is_causal: bool) -> Tensor:
        p = self.attn_drop if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal, scale=self.scale)
        if mask is not None:
            x = x.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # fully masked rows: zeros, not NaN
        return x

    def _reference(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        scores = (q * self.scale) @ k.transpose(-2, -1)  # (B, nh, Nq, Nk)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        if mask is not None:
            weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # NaN rows → zeros
        dropped = F.dropout(weights, self.attn_drop, self.training) if self.attn_drop else weights
        return dropped @ v, weights  # (B, nh, Nq, hd), (B, nh, Nq, Nk)


def set_fused_attention(module: nn.Module, fused: bool) -> None:
    """Select the fused (SDPA) or reference path for every ``Attention`` inside ``module``."""
    for m in module.modules():
        if isinstance(m, Attention):
            m.fused = fused


@contextmanager
def capture_attention(module: nn.Module) -> Iterator[dict[str, list[Tensor]]]:
    """Collect the attention weights of every ``Attention`` in ``module`` during the ``with`` block.

    Yields ``{module_name: [weights (B, nh, Nq, Nk) per call]}`` in module order; the weights are computed on the
    reference path while capturing.
    """
    found = {name: m for name, m in module.named_modules() if isinstance(m, Attention)}
    store: dict[str, list[Tensor]] = {name: [] for name in found}
    for name, m in found.items():
        m.record = store[name]
    try:
        yield store
    finally:
        for m in found.values():
            m.record = None
