"""Multi-scale deformable attention (Zhu et al. 2021, "Deformable DETR", §4.1, eq. 3), vitkit's second attention
operator beside the dense ``Attention``.

Each query looks at a handful of sampled points instead of every key: for head ``m``, level ``l`` and point ``k`` it
predicts an offset ``Δp_mlk`` around its reference point ``p̂`` and a weight ``A_mlk`` (softmax over the ``L·P``
points of the head), samples the value map of level ``l`` bilinearly at ``p̂ + Δp_mlk`` and sums:

    MSDeformAttn(z, p̂, {x_l}) = Σ_m W_m [ Σ_l Σ_k A_mlk · W'_m x_l(φ_l(p̂) + Δp_mlk) ]

Cost grows with the number of queries times ``nh·L·P``, not with the number of keys. Two paths compute the same
thing, chosen per instance with ``fused``: ``grid_sample`` per level (the default) and an explicit reference that
gathers the four neighbours of every sampled point and blends them with the bilinear weights itself
(``deformable_sample_reference``); the tests hold them together and to Hugging Face's implementation.

Conventions: batch-first; locations are normalised ``(x, y)`` in ``[0, 1]`` over the (padded) feature map, pixel
centres at ``(i + 0.5) / w`` (``align_corners=False``); points outside the map read zeros. A key mask is boolean,
``True`` = may attend (a real, non-padding value), as ``layers.masks`` builds them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Shapes = list[tuple[int, int]]  # (h, w) of every level, coarse or fine in any order, flattened in this order


def deformable_sample(value: Tensor, shapes: Shapes, locations: Tensor, weights: Tensor) -> Tensor:
    """Weighted sum of bilinear samples of a multi-level value map, with ``grid_sample``.

    Args:
        value: ``(B, N, nh, hd)``, the levels' ``h·w`` tokens concatenated in ``shapes`` order (``N = Σ h·w``).
        shapes: ``(h, w)`` of each level.
        locations: ``(B, Q, nh, L, P, 2)`` sampling points, normalised ``(x, y)``.
        weights: ``(B, Q, nh, L, P)`` attention weights of the points.

    Returns:
        ``(B, Q, nh·hd)``.
    """
    B, _, nh, hd = value.shape
    _, Q, _, L, P, _ = locations.shape
    grids = 2 * locations - 1  # grid_sample's [-1, 1] coordinates
    samples = []
    for level, (value_l, (h, w)) in enumerate(zip(value.split([h * w for h, w in shapes], dim=1), shapes,
                                                  strict=True)):
        value_l = value_l.permute(0, 2, 3, 1).reshape(B * nh, hd, h, w)  # (B·nh, hd, h, w)
        grid_l = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # (B·nh, Q, P, 2)
        samples.append(F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False))
    sampled = torch.stack(samples, dim=-2).flatten(-2)  # (B·nh, hd, Q, L·P)
    weights = weights.transpose(1, 2).reshape(B * nh, 1, Q, L * P)  # (B·nh, 1, Q, L·P)
    out = (sampled * weights).sum(-1).view(B, nh * hd, Q)  # (B, nh·hd, Q)
    return out.transpose(1, 2)  # (B, Q, nh·hd)


def deformable_sample_reference(value: Tensor, shapes: Shapes, locations: Tensor, weights: Tensor) -> Tensor:
    """The same as ``deformable_sample``, written out: for every level and point, the four neighbouring pixels are
    gathered and blended with their bilinear weights (neighbours outside the map count as zero)."""
    B, _, nh, hd = value.shape
    _, Q, _, L, P, _ = locations.shape
    out = value.new_zeros(B, Q, nh, hd)
    start = 0
    for level, (h, w) in enumerate(shapes):
        value_l = value[:, start : start + h * w]  # (B, h·w, nh, hd)
        start += h * w
        for point in range(P):
            loc = locations[:, :, :, level, point]  # (B, Q, nh, 2)
            x = loc[..., 0] * w - 0.5  # pixel coordinates, centres at integers
            y = loc[..., 1] * h - 0.5
            x0, y0 = x.floor(), y.floor()
            sample = value.new_zeros(B, Q, nh, hd)
            for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
                xi, yi = x0 + dx, y0 + dy
                bilinear = (1 - (x - xi).abs()) * (1 - (y - yi).abs())  # (B, Q, nh)
                inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
                index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long()  # (B, Q, nh) flat pixel index
                gathered = _gather(value_l, index)  # (B, Q, nh, hd)
                sample = sample + gathered * (bilinear * inside)[..., None]
            out = out + sample * weights[:, :, :, level, point, None]
    return out.flatten(2)  # (B, Q, nh·hd)


def _gather(value_l: Tensor, index: Tensor) -> Tensor:
    """``value_l[b, index[b, q, m], m]`` ``(B, Q, nh, hd)`` for ``value_l`` ``(B, h·w, nh, hd)``."""
    B, _, nh, hd = value_l.shape
    per_head = value_l.permute(0, 2, 1, 3)  # (B, nh, h·w, hd)
    idx = index.permute(0, 2, 1)[..., None].expand(-1, -1, -1, hd)  # (B, nh, Q, hd)
    return torch.gather(per_head, 2, idx).permute(0, 2, 1, 3)  # (B, Q, nh, hd)


class MultiScaleDeformableAttention(nn.Module):
    """Deformable cross-attention from queries to a multi-level value map.

    Parameter names follow Deformable DETR (``sampling_offsets``, ``attention_weights``, ``value_proj``,
    ``output_proj``), so foreign checkpoints map one to one.

    Args:
        dim: token width ``C``.
        num_heads: heads ``nh``; ``C`` must be divisible by it.
        num_levels: feature levels ``L``.
        num_points: sampled points ``P`` per head and level.
        fused: ``grid_sample`` path; ``False`` selects the explicit reference path.
    """

    def __init__(self, dim: int, num_heads: int = 8, num_levels: int = 3, num_points: int = 4, *,
                 fused: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads, self.num_levels, self.num_points = num_heads, num_levels, num_points
        self.fused = fused
        self.sampling_offsets = nn.Linear(dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.init_weights()

    def init_weights(self) -> None:
        """As Deformable DETR: zero offset weights, biases pointing each head's ``k``-th point ``k`` pixels away in
        its own direction; uniform attention weights; Xavier projections."""
        nn.init.zeros_(self.sampling_offsets.weight)
        nh, L, P = self.num_heads, self.num_levels, self.num_points
        thetas = torch.arange(nh, dtype=torch.float32) * (2.0 * math.pi / nh)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)  # (nh, 2)
        grid = (grid / grid.abs().max(-1, keepdim=True).values).view(nh, 1, 1, 2).repeat(1, L, P, 1)  # (nh, L, P, 2)
        grid = grid * torch.arange(1, P + 1, dtype=torch.float32).view(1, 1, P, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self, query: Tensor, reference_points: Tensor, value: Tensor, shapes: Shapes, *,
                mask: Tensor | None = None) -> Tensor:
        """Attend from ``query`` ``(B, Q, C)`` to ``value`` ``(B, N, C)`` (the levels of ``shapes`` flattened and
        concatenated, ``N = Σ h·w``).

        ``reference_points`` ``(B, Q, L or 1, 2)`` are normalised ``(x, y)`` points, offsets in units of each level's
        pixels; ``(B, Q, L or 1, 4)`` are ``(cx, cy, w, h)`` boxes, offsets scaled by half the box over ``P``
        (RT-DETR). ``mask`` is boolean ``(B, N)`` or ``(B, 1, 1, N)`` (``masks.key_padding``), ``True`` = a real
        value; masked values read as zero. Returns ``(B, Q, C)``.
        """
        B, Q, C = query.shape
        nh, L, P = self.num_heads, self.num_levels, self.num_points
        if len(shapes) != L or sum(h * w for h, w in shapes) != value.shape[1]:
            raise ValueError(f"shapes {shapes} must list {L} levels whose h·w sum to the {value.shape[1]} values")
        v = self.value_proj(value)
        if mask is not None:
            v = v.masked_fill(~mask.reshape(B, -1)[..., None], 0.0)
        v = v.view(B, -1, nh, C // nh)  # (B, N, nh, hd)
        offsets = self.sampling_offsets(query).view(B, Q, nh, L, P, 2)
        weights = self.attention_weights(query).view(B, Q, nh, L * P).softmax(-1).view(B, Q, nh, L, P)
        ref = reference_points[:, :, None, :, None, :]  # (B, Q, 1, L or 1, 1, 2 or 4)
        if reference_points.shape[-1] == 2:
            normaliser = query.new_tensor([(w, h) for h, w in shapes])  # (L, 2) as (x, y)
            locations = ref + offsets / normaliser[:, None, :]  # (B, Q, nh, L, P, 2)
        elif reference_points.shape[-1] == 4:
            locations = ref[..., :2] + offsets / P * ref[..., 2:] * 0.5
        else:
            raise ValueError(f"reference_points must end in 2 (points) or 4 (boxes), got "
                             f"{tuple(reference_points.shape)}")
        sample = deformable_sample if self.fused else deformable_sample_reference
        return self.output_proj(sample(v, shapes, locations, weights))
