"""microsoft/CvT checkpoints (``lib/models/cls_cvt.py`` layout) → vitkit ``CvT``.

The official model names its stages ``stage{i}`` and keeps the convolutional projections and the separate
query/key/value linears inside ``attn`` (``attn.conv_proj_q.conv``, ``attn.conv_proj_q.bn``, ``attn.proj_q``);
the rest (``patch_embed.proj/norm``, ``norm1/2``, ``mlp.fc1/2``, ``attn.proj``, ``norm``, ``head``) already has
vitkit's names. The query/key/value linears are stacked into ``attn.qkv``.
"""

from __future__ import annotations

from torch import Tensor

from vitkit.weights.hf_cvt import merge_qkv, rename

_OFFICIAL_RULES = [
    (r"stage(\d+)\.blocks\.(\d+)\.attn\.conv_proj_([qkv])\.", r"stages.\1.blocks.\2.conv_\3."),
    (r"stage(\d+)\.", r"stages.\1."),
]


def convert_official_cvt(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official CvT names → vitkit names."""
    return merge_qkv(rename(state_dict, _OFFICIAL_RULES))
