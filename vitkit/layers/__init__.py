"""The shared core: attention, masks, blocks, embeddings and positions. Pure PyTorch."""

from vitkit.layers import masks
from vitkit.layers.attention import Attention, KVCache, capture_attention, set_fused_attention
from vitkit.layers.blocks import Block, DecoderBlock, DropPath, Mlp, drop_path_rates
from vitkit.layers.deformable import MultiScaleDeformableAttention
from vitkit.layers.embed import ConvEmbed, PatchEmbed
from vitkit.layers.frozen_bn import FrozenBatchNorm2d, fold_frozen_batch_norm, freeze_batch_norm
from vitkit.layers.pos_embed import masked_sine_2d, resample_pos_embed, sincos_2d

__all__ = [
    "Attention",
    "Block",
    "ConvEmbed",
    "DecoderBlock",
    "DropPath",
    "FrozenBatchNorm2d",
    "KVCache",
    "Mlp",
    "MultiScaleDeformableAttention",
    "PatchEmbed",
    "capture_attention",
    "drop_path_rates",
    "fold_frozen_batch_norm",
    "freeze_batch_norm",
    "masked_sine_2d",
    "masks",
    "resample_pos_embed",
    "set_fused_attention",
    "sincos_2d",
]
