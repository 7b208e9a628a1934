"""RT-DETR's efficient hybrid encoder (Zhao et al. 2024, "DETRs Beat YOLOs on Real-time Object Detection", §4.2,
Fig. 3): AIFI, one Transformer encoder layer on the stride-32 map only, then CCFM, a top-down and bottom-up
cross-scale fusion of the three maps with CSP blocks of RepVGG-style convolutions.

AIFI uses the shared ``Block`` (post-norm, GELU) with fixed 2-D sin-cos positions added to queries and keys.
The RepVGG block (Ding et al. 2021) trains as a 3×3 and a 1×1 conv-BN branch summed; for inference the two fold into
one 3×3 convolution with bias (``RepVggBlock.fold``), which computes the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitkit.layers import Block, sincos_2d
from vitkit.layers.checkpointing import run_block


class ConvNorm(nn.Module):
    """Convolution without bias, BatchNorm, optional SiLU: ``act(norm(conv(x)))``."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, stride: int = 1, *, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding=(kernel_size - 1) // 2, bias=False)
        self.norm = nn.BatchNorm2d(out_chans)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))

    def folded(self) -> tuple[Tensor, Tensor]:
        """The conv with the BatchNorm's running statistics absorbed: ``(weight, bias)``."""
        scale = self.norm.weight * (self.norm.running_var + self.norm.eps).rsqrt()  # (Cout,)
        return self.conv.weight * scale[:, None, None, None], self.norm.bias - self.norm.running_mean * scale


class RepVggBlock(nn.Module):
    """``silu(conv_bn_3x3(x) + conv_bn_1x1(x))``; after ``fold()`` (inference), ``silu(conv_3x3(x))`` with the
    branches merged: the 1×1 kernel becomes the centre of a 3×3 one and the BatchNorms fold into weight and bias.

    The folded kernel is kept in non-persistent buffers (state dicts keep the trainable branches) and used only in
    eval mode; ``fold()`` again after changing the weights, ``unfold()`` to drop it.
    """

    def __init__(self, chans: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(chans, chans, 3, act=False)
        self.conv2 = ConvNorm(chans, chans, 1, act=False)
        self.act = nn.SiLU()
        self.register_buffer("folded_weight", None, persistent=False)  # (C, C, 3, 3) after fold()
        self.register_buffer("folded_bias", None, persistent=False)  # (C,)

    def forward(self, x: Tensor) -> Tensor:
        if self.folded_weight is not None and not self.training:
            return self.act(F.conv2d(x, self.folded_weight, self.folded_bias, padding=1))
        return self.act(self.conv1(x) + self.conv2(x))

    @torch.no_grad()
    def fold(self) -> None:
        w3, b3 = self.conv1.folded()
        w1, b1 = self.conv2.folded()
        self.folded_weight = w3 + F.pad(w1, [1, 1, 1, 1])  # the 1×1 kernel at the centre of a 3×3 one
        self.folded_bias = b3 + b1

    def unfold(self) -> None:
        self.folded_weight = self.folded_bias = None


def fold_repvgg(module: nn.Module) -> int:
    """Fold every ``RepVggBlock`` in ``module`` for inference; returns how many."""
    blocks = [m for m in module.modules() if isinstance(m, RepVggBlock)]
    for block in blocks:
        block.fold()
    return len(blocks)


class CSPRepLayer(nn.Module):
    """Cross-stage-partial fusion block: ``conv3(blocks(conv1(x)) + conv2(x))``; ``conv3`` is the identity when the
    hidden width equals the output width."""

    def __init__(self, in_chans: int, out_chans: int, *, num_blocks: int = 3, expansion: float = 1.0) -> None:
        super().__init__()
        hidden = int(out_chans * expansion)
        self.conv1 = ConvNorm(in_chans, hidden, 1)
        self.conv2 = ConvNorm(in_chans, hidden, 1)
        self.bottlenecks = nn.Sequential(*[RepVggBlock(hidden) for _ in range(num_blocks)])
        self.conv3 = ConvNorm(hidden, out_chans, 1) if hidden != out_chans else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(self.bottlenecks(self.conv1(x)) + self.conv2(x))


class HybridEncoder(nn.Module):
    """AIFI on the coarsest map, then CCFM over all three: ``forward([s8, s16, s32]) -> [s8, s16, s32]``, each
    ``(B, C, h_l, w_l)`` with ``C = dim``; every map's size must be twice the next one's (images padded to 32)."""

    def __init__(self, dim: int, *, num_heads: int, ffn_dim: int, depth: int = 1, expansion: float = 1.0,
                 num_blocks: int = 3, drop: float = 0.0, temperature: float = 10000.0, fused_attn: bool = True,
                 num_levels: int = 3) -> None:
        super().__init__()
        self.temperature = temperature
        self.grad_checkpointing = False  # recompute the AIFI layers and the CSP blocks in backward (set by RTDETR)
        self.aifi = nn.ModuleList([
            Block(dim, num_heads, mlp_ratio=ffn_dim / dim, proj_drop=drop, attn_drop=drop, norm_first=False,
                  act_layer=nn.GELU, fused_attn=fused_attn)
            for _ in range(depth)
        ])
        n = num_levels - 1

        def csp() -> CSPRepLayer:
            return CSPRepLayer(2 * dim, dim, num_blocks=num_blocks, expansion=expansion)

        self.lateral_convs = nn.ModuleList([ConvNorm(dim, dim, 1) for _ in range(n)])
        self.fpn_blocks = nn.ModuleList([csp() for _ in range(n)])
        self.downsample_convs = nn.ModuleList([ConvNorm(dim, dim, 3, 2) for _ in range(n)])
        self.pan_blocks = nn.ModuleList([csp() for _ in range(n)])

    def forward(self, maps: list[Tensor]) -> list[Tensor]:
        maps = list(maps)
        maps[-1] = self.forward_aifi(maps[-1])
        # top-down (FPN): from the coarsest map, lateral conv, upsample ×2, fuse with the next finer map
        top_down = [maps[-1]]
        for i, (lateral, block) in enumerate(zip(self.lateral_convs, self.fpn_blocks, strict=True)):
            coarse = top_down[-1] = lateral(top_down[-1])
            up = F.interpolate(coarse, scale_factor=2.0, mode="nearest")
            fused = torch.cat([up, maps[-2 - i]], dim=1)  # (B, 2C, h, w)
            top_down.append(run_block(block, fused, checkpoint=self.grad_checkpointing))  # (B, C, h, w)
        top_down.reverse()  # fine → coarse
        # bottom-up (PAN): from the finest map, stride-2 conv, fuse with the next coarser top-down map
        out = [top_down[0]]
        for i, (down, block) in enumerate(zip(self.downsample_convs, self.pan_blocks, strict=True)):
            fused = torch.cat([down(out[-1]), top_down[i + 1]], dim=1)  # (B, 2C, h, w)
            out.append(run_block(block, fused, checkpoint=self.grad_checkpointing))
        return out

    def forward_aifi(self, x: Tensor) -> Tensor:
        """Intra-scale interaction: self-attention over the ``h·w`` tokens of one map ``(B, C, h, w)``."""
        if not len(self.aifi):
            return x
        B, C, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, h·w, C)
        pos = self.positions(h, w, C).to(tokens)
        for block in self.aifi:
            tokens = run_block(block, tokens, pos=pos, checkpoint=self.grad_checkpointing)
        return tokens.transpose(1, 2).reshape(B, C, h, w)  # (B, C, h, w)

    def positions(self, h: int, w: int, dim: int) -> Tensor:
        """Sin-cos positions ``(1, h·w, C)``, row channels first then column channels (RT-DETR's order)."""
        table = sincos_2d(h, w, dim, temperature=self.temperature)  # (h·w, C): column half, then row half
        return torch.cat([table[:, dim // 2 :], table[:, : dim // 2]], dim=1)[None]  # (1, h·w, C)
