"""CvT checkpoints → vitkit ``CvT``: Hugging Face ``CvtForImageClassification``, microsoft/CvT, or vitkit's own.

Hugging Face names every part after its role (``cvt.encoder.stages.{i}.layers.{j}.attention.attention.
projection_query``, ``layernorm_before``, ``intermediate.dense`` ...); ``CvtModel`` checkpoints (no ``cvt.`` prefix,
no head) are understood too. The official model (``lib/models/cls_cvt.py``) names its stages ``stage{i}`` and keeps
the convolutional projections inside ``attn`` (``attn.conv_proj_q.conv``, ``attn.conv_proj_q.bn``); the rest
already has vitkit's names. Both keep separate query/key/value linears, which are stacked into vitkit's ``attn.qkv``
(row blocks q, k, v). Keys that match no rule are passed on unchanged for the loader to report; every shape is
checked there.
"""

from __future__ import annotations

import re

from torch import Tensor

from vitkit.models import CvT
from vitkit.weights.renaming import rename_keys, stack_qkv

HEAD_PREFIXES = ("head.",)

_STAGE = r"(?:cvt\.)?encoder\.stages\.(\d+)\."
_BLOCK = _STAGE + r"layers\.(\d+)\."
_PROJ = r"attention\.attention\.convolution_projection_(q|k|v)\w*\.convolution_projection\."
HF_RULES = [
    (_STAGE + r"embedding\.convolution_embeddings\.projection\.(.+)", r"stages.\1.patch_embed.proj.\2"),
    (_STAGE + r"embedding\.convolution_embeddings\.normalization\.(.+)", r"stages.\1.patch_embed.norm.\2"),
    (_STAGE + r"cls_token", r"stages.\1.cls_token"),
    (_BLOCK + _PROJ + r"convolution\.(.+)", r"stages.\1.blocks.\2.conv_\3.conv.\4"),
    (_BLOCK + _PROJ + r"normalization\.(.+)", r"stages.\1.blocks.\2.conv_\3.bn.\4"),
    (_BLOCK + r"attention\.attention\.projection_(q|k|v)\w*\.(.+)", r"stages.\1.blocks.\2.attn.proj_\3.\4"),
    (_BLOCK + r"attention\.output\.dense\.(.+)", r"stages.\1.blocks.\2.attn.proj.\3"),
    (_BLOCK + r"intermediate\.dense\.(.+)", r"stages.\1.blocks.\2.mlp.fc1.\3"),
    (_BLOCK + r"output\.dense\.(.+)", r"stages.\1.blocks.\2.mlp.fc2.\3"),
    (_BLOCK + r"layernorm_before\.(.+)", r"stages.\1.blocks.\2.norm1.\3"),
    (_BLOCK + r"layernorm_after\.(.+)", r"stages.\1.blocks.\2.norm2.\3"),
    (r"layernorm\.(.+)", r"norm.\1"),
    (r"classifier\.(.+)", r"head.\1"),
]
OFFICIAL_RULES = [
    (r"stage(\d+)\.blocks\.(\d+)\.attn\.conv_proj_([qkv])\.(.+)", r"stages.\1.blocks.\2.conv_\3.\4"),
    (r"stage(\d+)\.(.+)", r"stages.\1.\2"),
]
_SEPARATE_QKV = r"(?P<prefix>.*\.attn\.)proj_(?P<part>[qkv])\.(?P<param>weight|bias)"


def detect_layout(state_dict: dict[str, Tensor]) -> str:
    """``"hf"``, ``"official"`` or ``"vitkit"``, from the key names."""
    keys = list(state_dict)
    if any(re.match(r"(cvt\.)?encoder\.stages\.\d+\.", k) for k in keys):
        return "hf"
    if any(re.match(r"stage\d+\.", k) for k in keys):
        return "official"
    return "vitkit"


def convert(state_dict: dict[str, Tensor], model: CvT) -> tuple[dict[str, Tensor], list[str]]:
    """Any supported CvT layout → ``model``'s names, with notes for the load report."""
    layout = detect_layout(state_dict)
    if layout == "vitkit":
        return dict(state_dict), []
    rules = HF_RULES if layout == "hf" else OFFICIAL_RULES
    renamed, _ = rename_keys(state_dict, rules)  # keys no rule matches keep their names (head, norm of official)
    sd = stack_qkv(renamed, _SEPARATE_QKV, r"\g<prefix>qkv.\g<param>")
    if layout == "hf":
        return sd, ["converted from the Hugging Face CvtForImageClassification layout"]
    notes = ["converted from the official microsoft/CvT layout"]
    if model.config.act_layer != "quick_gelu":
        notes.append("official CvT weights were trained with QuickGELU; build with act_layer='quick_gelu' to "
                     "reproduce them exactly (this model uses GELU, as Hugging Face's port does)")
    return sd, notes
