"""Transformer building blocks shared by the families: ``Mlp``, ``DropPath``, the encoder ``Block`` and the
``DecoderBlock``.

``Block`` is pre-norm (ViT, Dosovitskiy et al. 2020, eq. 2–3) or post-norm (the original Transformer and DETR's
encoder, Vaswani et al. 2017; Carion et al. 2020). Position embeddings passed as ``pos`` are added to the queries
and keys only, as DETR does. ``DecoderBlock`` adds cross-attention to a memory (Vaswani et al. 2017, §3.1; DETR's
decoder, Carion et al. 2020, §3.2 and appendix A.3).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from vitkit.layers.attention import Attention, KVCache
from vitkit.layers.recompute import act_linear


class Mlp(nn.Module):
    """Two-layer feed-forward network ``fc2(drop(act(fc1(x))))``.

    ``recompute_act`` saves training memory: the activation is recomputed in the backward pass instead of stored
    (same gradients; see ``layers.recompute``).
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        *,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        drop: float = 0.0,
        bias: bool = True,
        recompute_act: bool = False,
    ) -> None:
        super().__init__()
        self.recompute_act = recompute_act  # keep only fc1's output for backward (see layers.recompute)
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1(x)
        if self.recompute_act and not (self.training and self.drop1.p > 0):  # a dropout mask would need keeping
            return self.drop2(act_linear(x, self.act, self.fc2))
        return self.drop2(self.fc2(self.drop1(self.act(x))))


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop the whole residual branch per sample while training.

    Kept samples are scaled by ``1 / (1 - p)`` so the expected output is unchanged.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # one draw per sample
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def drop_path_rates(drop_path_rate: float, depth: int) -> list[float]:
    """Stochastic-depth rates rising linearly from 0 to ``drop_path_rate`` over ``depth`` blocks."""
    if depth <= 1:
        return [drop_path_rate] * depth
    return [drop_path_rate * i / (depth - 1) for i in range(depth)]


class Block(nn.Module):
    """Encoder block: self-attention and MLP, each a residual branch with norm and drop path.

    Pre-norm: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``. Post-norm: ``norm1(x + attn(x))`` then
    ``norm2(x + mlp(x))``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_first: bool = True,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.norm1 = norm_layer(dim)
        self.attn = Attention(
            dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop, fused=fused_attn
        )
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(
        self,
        x: Tensor,
        *,
        pos: Tensor | None = None,
        mask: Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
    ) -> Tensor:
        """``x`` ``(B, N, C)``; ``pos`` ``(B or 1, N, C)`` is added to queries and keys; ``mask`` as ``Attention``."""
        if self.norm_first:
            x = x + self.drop_path1(self._attend(self.norm1(x), pos, mask, is_causal, cache))
            return x + self.drop_path2(self.mlp(self.norm2(x)))
        x = self.norm1(x + self.drop_path1(self._attend(x, pos, mask, is_causal, cache)))
        return self.norm2(x + self.drop_path2(self.mlp(x)))

    def _attend(
        self, x: Tensor, pos: Tensor | None, mask: Tensor | None, is_causal: bool, cache: KVCache | None
    ) -> Tensor:
        if pos is None:
            return self.attn(x, mask=mask, is_causal=is_causal, cache=cache)
        qk = x + pos
        return self.attn(qk, qk, x, mask=mask, is_causal=is_causal, cache=cache)


class DecoderBlock(nn.Module):
    """Decoder block: self-attention, cross-attention to a memory, and MLP, each a residual branch with a norm.

    Post-norm (DETR): ``x = norm1(x + self_attn(x + qpos, x + qpos, x))``,
    ``x = norm2(x + cross_attn(x + qpos, mem + mpos, mem))``, ``x = norm3(x + mlp(x))``. Pre-norm applies each
    norm to the branch input instead. Positions are added to queries and keys, never to values.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        norm_first: bool = False,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first

        def attention() -> Attention:
            return Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop,
                             fused=fused_attn)

        self.attn = attention()
        self.norm1 = norm_layer(dim)
        self.cross_attn = attention()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop)
        self.norm3 = norm_layer(dim)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        *,
        query_pos: Tensor | None = None,
        memory_pos: Tensor | None = None,
        memory_mask: Tensor | None = None,
    ) -> Tensor:
        """``x`` ``(B, Q, C)`` attends to itself and to ``memory`` ``(B, N, C)``.

        ``query_pos`` ``(B or 1, Q, C)`` and ``memory_pos`` ``(B or 1, N, C)`` are added to queries and keys;
        ``memory_mask`` (True = may attend, e.g. ``masks.key_padding``) masks memory tokens.
        """
        if self.norm_first:
            x = x + self._self_attend(self.norm1(x), query_pos)
            x = x + self._cross_attend(self.norm2(x), memory, query_pos, memory_pos, memory_mask)
            return x + self.mlp(self.norm3(x))
        x = self.norm1(x + self._self_attend(x, query_pos))
        x = self.norm2(x + self._cross_attend(x, memory, query_pos, memory_pos, memory_mask))
        return self.norm3(x + self.mlp(x))

    def _self_attend(self, x: Tensor, query_pos: Tensor | None) -> Tensor:
        qk = x if query_pos is None else x + query_pos
        return self.attn(qk, qk, x)

    def _cross_attend(
        self, x: Tensor, memory: Tensor, query_pos: Tensor | None, memory_pos: Tensor | None, mask: Tensor | None
    ) -> Tensor:
        q = x if query_pos is None else x + query_pos
        k = memory if memory_pos is None else memory + memory_pos
        return self.cross_attn(q, k, memory, mask=mask)
