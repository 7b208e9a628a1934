"""Hugging Face ``DetrForObjectDetection`` checkpoints → vitkit ``DETR``.

Both layouts transformers has used are accepted: the current one (transformers 5: ``model.backbone.model.``,
``o_proj``, ``layers.N.mlp.fc1``) and the one of the Hub checkpoints (``model.backbone.conv_encoder.model.``,
``out_proj``, ``layers.N.fc1``). The separate ``q_proj``/``k_proj``/``v_proj`` are stacked into vitkit's ``qkv``
(row blocks q, k, v).

The backbone is either a timm model (``use_timm_backbone=True``, the default and what the Hub's
``facebook/detr-resnet-50`` uses: timm's module names, kept as they are) or Hugging Face's own ResNet
(``backbone_config`` of type ``resnet``: ``embedder``/``encoder.stages.S.layers.I.layer.J``), renamed here to the
timm ResNet names it corresponds to.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vitkit.weights.renaming import rename_keys

_ENC = r"encoder\.layers\.(\d+)\."
_DEC = r"decoder\.layers\.(\d+)\."
_P = r"\.(weight|bias)"
_STAGE = r"backbone\.encoder\.stages\.(\d+)\.layers\.(\d+)\."
RULES = [
    (r"backbone\.embedder\.embedder\.convolution\.weight", "backbone.conv1.weight"),
    (r"backbone\.embedder\.embedder\.normalization\.(.+)", r"backbone.bn1.\1"),
    (_STAGE + r"shortcut\.convolution\.weight", r"backbone.layer\1.\2.downsample.0.weight"),
    (_STAGE + r"shortcut\.normalization\.(.+)", r"backbone.layer\1.\2.downsample.1.\3"),
    (_STAGE + r"layer\.(\d+)\.convolution\.weight", r"backbone.layer\1.\2.conv\3.weight"),
    (_STAGE + r"layer\.(\d+)\.normalization\.(.+)", r"backbone.layer\1.\2.bn\3.\4"),
    (r"backbone\.(.+)", r"backbone.\1"),  # timm backbone: same names
    (r"(encoder|decoder)\.(\d+)\.(attn|cross_attn)\.qkv" + _P, r"\1.\2.\3.qkv.\4"),  # stacked by _stack_qkv
    (r"input_projection" + _P, r"input_proj.\1"),
    (r"query_position_embeddings\.weight", "query_embed"),
    (_ENC + r"self_attn\.o_proj" + _P, r"encoder.\1.attn.proj.\2"),
    (_ENC + r"self_attn_layer_norm" + _P, r"encoder.\1.norm1.\2"),
    (_ENC + r"mlp\.(fc[12])" + _P, r"encoder.\1.mlp.\2.\3"),
    (_ENC + r"final_layer_norm" + _P, r"encoder.\1.norm2.\2"),
    (_DEC + r"self_attn\.o_proj" + _P, r"decoder.\1.attn.proj.\2"),
    (_DEC + r"encoder_attn\.o_proj" + _P, r"decoder.\1.cross_attn.proj.\2"),
    (_DEC + r"self_attn_layer_norm" + _P, r"decoder.\1.norm1.\2"),
    (_DEC + r"encoder_attn_layer_norm" + _P, r"decoder.\1.norm2.\2"),
    (_DEC + r"mlp\.(fc[12])" + _P, r"decoder.\1.mlp.\2.\3"),
    (_DEC + r"final_layer_norm" + _P, r"decoder.\1.norm3.\2"),
    (r"decoder\.layernorm" + _P, r"decoder_norm.\1"),
    (r"class_labels_classifier" + _P, r"class_head.\1"),
    (r"bbox_predictor\.layers\.0" + _P, r"box_head.0.\1"),
    (r"bbox_predictor\.layers\.1" + _P, r"box_head.2.\1"),
    (r"bbox_predictor\.layers\.2" + _P, r"box_head.4.\1"),
]
_ATTN = {"encoder": {"self_attn": "attn"}, "decoder": {"self_attn": "attn", "encoder_attn": "cross_attn"}}


def is_hf_detr(state_dict: dict[str, Tensor]) -> bool:
    return any(k.removeprefix("model.").startswith(("input_projection.", "query_position_embeddings."))
               for k in state_dict)


def convert_hf_detr(state_dict: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    sd = {_modernise(k): v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    sd = _stack_qkv(sd)
    sd = {_stage_numbers(k): v for k, v in sd.items()}
    sd, unmatched = rename_keys(sd, RULES)
    notes = ["converted from the Hugging Face DetrForObjectDetection layout"]
    if unmatched:
        notes.append(f"{len(unmatched)} keys of the Hugging Face checkpoint have no vitkit counterpart: "
                     f"{unmatched[:5]}")
    return sd, notes


def _modernise(key: str) -> str:
    """Hub-era names → transformers-5 names, with the ``model.`` prefix dropped."""
    key = key.removeprefix("model.").replace("backbone.conv_encoder.", "backbone.").replace("out_proj", "o_proj")
    key = key.replace("backbone.model.", "backbone.")
    for part in ("fc1", "fc2"):
        if f".{part}." in key and ".mlp." not in key and key.startswith(("encoder.layers.", "decoder.layers.")):
            key = key.replace(f".{part}.", f".mlp.{part}.")
    return key


def _stack_qkv(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    out = dict(sd)
    for key in sd:
        side, _, idx, name, proj, param = (key.split(".") + [""] * 6)[:6]
        if proj != "q_proj" or name not in _ATTN.get(side, {}):
            continue
        prefix = f"{side}.layers.{idx}.{name}"
        parts = [out.pop(f"{prefix}.{p}_proj.{param}", None) for p in "qkv"]
        if any(p is None for p in parts):
            continue  # incomplete: left for the loader to report
        out[f"{side}.{idx}.{_ATTN[side][name]}.qkv.{param}"] = torch.cat(parts)
    return out


def _stage_numbers(key: str) -> str:
    """HF ResNet stage ``S`` (from 0) / conv ``J`` (from 0) → timm ``layer{S+1}`` / ``conv{J+1}``, ``bn{J+1}``."""
    if not key.startswith("backbone.encoder.stages."):
        return key
    parts = key.split(".")
    parts[3] = str(int(parts[3]) + 1)
    if parts[6] == "layer":
        parts[7] = str(int(parts[7]) + 1)
    return ".".join(parts)
