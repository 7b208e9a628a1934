"""CvT checkpoints → vitkit ``CvT``: layout detection, and the Hugging Face ``CvtForImageClassification`` layout.

Hugging Face names every part after its role (``cvt.encoder.stages.{i}.layers.{j}.attention.attention.
projection_query``, ``layernorm_before``, ``intermediate.dense`` ...) and keeps separate query/key/value linears;
vitkit keeps one ``attn.qkv`` whose row blocks are the query, key and value projections, so the three are stacked.
Keys that match no rule are passed on unchanged, for the loader to report; every shape is checked there.
``CvtModel`` checkpoints (no ``cvt.`` prefix, no head) are understood too.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from vitkit.models.cvt import CvT

_STAGE = r"(?:cvt\.)?encoder\.stages\.(\d+)\."
_BLOCK = _STAGE + r"layers\.(\d+)\."
_HF_RULES = [  # (pattern, replacement): the first pattern matching the key's start is applied
    (_STAGE + r"embedding\.convolution_embeddings\.projection\.", r"stages.\1.patch_embed.proj."),
    (_STAGE + r"embedding\.convolution_embeddings\.normalization\.", r"stages.\1.patch_embed.norm."),
    (_STAGE + r"cls_token$", r"stages.\1.cls_token"),
    (_BLOCK + r"attention\.attention\.convolution_projection_(q|k|v)\w*\.convolution_projection\.convolution\.",
     r"stages.\1.blocks.\2.conv_\3.conv."),
    (_BLOCK + r"attention\.attention\.convolution_projection_(q|k|v)\w*\.convolution_projection\.normalization\.",
     r"stages.\1.blocks.\2.conv_\3.bn."),
    (_BLOCK + r"attention\.attention\.projection_(q|k|v)\w*\.", r"stages.\1.blocks.\2.attn.proj_\3."),
    (_BLOCK + r"attention\.output\.dense\.", r"stages.\1.blocks.\2.attn.proj."),
    (_BLOCK + r"intermediate\.dense\.", r"stages.\1.blocks.\2.mlp.fc1."),
    (_BLOCK + r"output\.dense\.", r"stages.\1.blocks.\2.mlp.fc2."),
    (_BLOCK + r"layernorm_before\.", r"stages.\1.blocks.\2.norm1."),
    (_BLOCK + r"layernorm_after\.", r"stages.\1.blocks.\2.norm2."),
    (r"layernorm\.", "norm."),
    (r"classifier\.", "head."),
]
_SEPARATE_QKV = re.compile(r"^(.*\.attn\.)proj_([qkv])\.(weight|bias)$")


def detect_layout(state_dict: dict[str, Tensor]) -> str:
    """``"hf"``, ``"official"`` or ``"vitkit"``, from the key names."""
    keys = list(state_dict)
    if any(re.match(r"(cvt\.)?encoder\.stages\.\d+\.", k) for k in keys):
        return "hf"
    if any(re.match(r"stage\d+\.", k) for k in keys):
        return "official"
    return "vitkit"


def rename(state_dict: dict[str, Tensor], rules: list[tuple[str, str]]) -> dict[str, Tensor]:
    """Apply the first matching ``(pattern, replacement)`` rule to each key's start; unmatched keys stay as they are."""
    compiled = [(re.compile(p), r) for p, r in rules]
    out = {}
    for key, value in state_dict.items():
        for pattern, replacement in compiled:
            m = pattern.match(key)
            if m:
                key = m.expand(replacement) + key[m.end():]
                break
        out[key] = value
    return out


def merge_qkv(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Stack ``….attn.proj_{q,k,v}.{weight,bias}`` into ``….attn.qkv.{weight,bias}`` (rows: query, key, value).

    A triple with a part missing is left unmerged, so the loader names the stray and the missing keys.
    """
    out, parts = {}, {}
    for key, value in state_dict.items():
        m = _SEPARATE_QKV.match(key)
        if m:
            parts.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = (key, value)
        else:
            out[key] = value
    for (prefix, kind), found in parts.items():
        if set(found) == {"q", "k", "v"}:
            out[f"{prefix}qkv.{kind}"] = torch.cat([found[c][1] for c in "qkv"], dim=0)  # (3C, C) or (3C,)
        else:
            out.update(dict(found.values()))
    return out


def convert_hf_cvt(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Hugging Face ``CvtForImageClassification`` / ``CvtModel`` names → vitkit names."""
    return merge_qkv(rename(state_dict, _HF_RULES))


def convert_cvt_checkpoint(state_dict: dict[str, Tensor], model: CvT) -> tuple[dict[str, Tensor], list[str]]:
    """Any supported CvT layout → ``model``'s names, with notes for the load report."""
    from vitkit.weights.official_cvt import convert_official_cvt

    layout = detect_layout(state_dict)
    if layout == "vitkit":
        return dict(state_dict), []
    if layout == "hf":
        notes = ["converted from the Hugging Face CvtForImageClassification layout"]
        return convert_hf_cvt(state_dict), notes
    notes = ["converted from the official microsoft/CvT layout"]
    if model.config.act_layer != "quick_gelu":
        notes.append("official CvT weights were trained with QuickGELU; build with act_layer='quick_gelu' to "
                     "reproduce them exactly (this model uses GELU, as Hugging Face's port does)")
    return convert_official_cvt(state_dict), notes
