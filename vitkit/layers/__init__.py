"""The shared core: attention, masks, blocks, embeddings and positions. Pure PyTorch."""

from vitkit.layers import masks
from vitkit.layers.attention import Attention, KVCache, capture_attention, set_fused_attention
from vitkit.layers.blocks import Block, DropPath, Mlp, drop_path_rates
from vitkit.layers.embed import ConvEmbed, PatchEmbed
from vitkit.layers.pos_embed import resample_pos_embed, sincos_2d

__all__ = [
    "Attention",
    "Block",
    "ConvEmbed",
    "DropPath",
    "KVCache",
    "Mlp",
    "PatchEmbed",
    "capture_attention",
    "drop_path_rates",
    "masks",
    "resample_pos_embed",
    "set_fused_attention",
    "sincos_2d",
]
