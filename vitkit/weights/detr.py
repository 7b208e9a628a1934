"""DETR checkpoints → vitkit ``DETR``: facebookresearch/detr, Hugging Face ``DetrForObjectDetection``, or vitkit's.

Official (``detr-r50-e632da11.pth`` etc.): a torchvision ResNet with frozen BatchNorm under ``backbone.0.body.``
(timm's ResNet module names) and a sequence-first ``nn.Transformer`` copy under ``transformer.``, whose
``nn.MultiheadAttention`` keeps the query/key/value projections as one ``in_proj_weight`` ``(3C, C)`` with row
blocks q, k, v — exactly vitkit's ``qkv``.

Hugging Face: both layouts transformers has used — the current one (transformers 5: ``model.backbone.model.``,
``o_proj``, ``layers.N.mlp.fc1``) and that of the Hub checkpoints (``model.backbone.conv_encoder.model.``,
``out_proj``, ``layers.N.fc1``). The separate ``q_proj``/``k_proj``/``v_proj`` are stacked into ``qkv``. The
backbone is a timm model (``use_timm_backbone=True``, the default and what ``facebook/detr-resnet-50`` uses: timm's
names, kept) or Hugging Face's own ResNet (``embedder``/``encoder.stages.S.layers.I.layer.J``), renamed to the timm
ResNet names it corresponds to.

A bare timm CNN checkpoint (ImageNet weights, ``conv1.weight``, ``layer1.0…``, ``fc.*``: ``create_model(...,
pretrained="backbone")`` or a ``checkpoint`` such as ``hf-hub:timm/resnet50.tv_in1k``) fills the backbone only:
what the backbone has no use for (the classifier, stages beyond ``backbone_level``) is reported as skipped, and the
Transformer, queries and heads keep their fresh initialisation.

Every layout's backbone is checked against the model's (``check_backbone``): another backbone is named as such.
"""

from __future__ import annotations

from torch import Tensor

from vitkit.models import DETR
from vitkit.weights.loading import backbone_only, finish_detector
from vitkit.weights.renaming import rename_keys, stack_qkv

HEAD_PREFIXES = ("class_head.",)  # the box MLP is class-agnostic: a new class count re-initialises the class head

_LAYER = r"transformer\.(encoder|decoder)\.layers\.(\d+)\."
OFFICIAL_RULES = [
    (r"backbone\.0\.body\.(.+)", r"backbone.\1"),
    (r"input_proj\.(weight|bias)", r"input_proj.\1"),
    (r"query_embed\.weight", "query_embed"),
    (_LAYER + r"self_attn\.in_proj_(weight|bias)", r"\1.\2.attn.qkv.\3"),
    (_LAYER + r"self_attn\.out_proj\.(weight|bias)", r"\1.\2.attn.proj.\3"),
    (_LAYER + r"multihead_attn\.in_proj_(weight|bias)", r"\1.\2.cross_attn.qkv.\3"),
    (_LAYER + r"multihead_attn\.out_proj\.(weight|bias)", r"\1.\2.cross_attn.proj.\3"),
    (_LAYER + r"linear1\.(weight|bias)", r"\1.\2.mlp.fc1.\3"),
    (_LAYER + r"linear2\.(weight|bias)", r"\1.\2.mlp.fc2.\3"),
    (_LAYER + r"(norm[123])\.(weight|bias)", r"\1.\2.\3.\4"),
    (r"transformer\.decoder\.norm\.(weight|bias)", r"decoder_norm.\1"),
    (r"class_embed\.(weight|bias)", r"class_head.\1"),
    (r"bbox_embed\.layers\.0\.(weight|bias)", r"box_head.0.\1"),
    (r"bbox_embed\.layers\.1\.(weight|bias)", r"box_head.2.\1"),
    (r"bbox_embed\.layers\.2\.(weight|bias)", r"box_head.4.\1"),
]

_ENC = r"encoder\.layers\.(\d+)\."
_DEC = r"decoder\.layers\.(\d+)\."
_P = r"\.(weight|bias)"
_STAGE = r"backbone\.encoder\.stages\.(\d+)\.layers\.(\d+)\."
HF_RULES = [
    (r"backbone\.embedder\.embedder\.convolution\.weight", "backbone.conv1.weight"),
    (r"backbone\.embedder\.embedder\.normalization\.(.+)", r"backbone.bn1.\1"),
    (_STAGE + r"shortcut\.convolution\.weight", r"backbone.layer\1.\2.downsample.0.weight"),
    (_STAGE + r"shortcut\.normalization\.(.+)", r"backbone.layer\1.\2.downsample.1.\3"),
    (_STAGE + r"layer\.(\d+)\.convolution\.weight", r"backbone.layer\1.\2.conv\3.weight"),
    (_STAGE + r"layer\.(\d+)\.normalization\.(.+)", r"backbone.layer\1.\2.bn\3.\4"),
    (r"backbone\.(.+)", r"backbone.\1"),  # timm backbone: same names
    (_ENC + r"self_attn\.qkv" + _P, r"encoder.\1.attn.qkv.\2"),
    (_DEC + r"self_attn\.qkv" + _P, r"decoder.\1.attn.qkv.\2"),
    (_DEC + r"encoder_attn\.qkv" + _P, r"decoder.\1.cross_attn.qkv.\2"),
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
_HF_QKV = (r"(?P<prefix>(?:en|de)coder\.layers\.\d+\.(?:self_attn|encoder_attn)\.)"
           r"(?P<part>[qkv])_proj\.(?P<param>weight|bias)")


def is_official(state_dict: dict[str, Tensor]) -> bool:
    return any(k.startswith(("transformer.encoder.", "backbone.0.body.")) for k in state_dict)


def is_hf(state_dict: dict[str, Tensor]) -> bool:
    return any(k.removeprefix("model.").startswith(("input_projection.", "query_position_embeddings."))
               for k in state_dict)


def convert(state_dict: dict[str, Tensor], model: DETR) -> tuple[dict[str, Tensor], list[str]]:
    """Official, Hugging Face or vitkit layout → ``model``'s names; the backbone is checked to be the model's."""
    if is_official(state_dict):
        sd, unmatched = rename_keys(state_dict, OFFICIAL_RULES)
        notes = ["converted from the official facebookresearch/detr layout"]
    elif is_hf(state_dict):
        sd = stack_qkv({_modernise(k): v for k, v in state_dict.items()}, _HF_QKV, r"\g<prefix>qkv.\g<param>")
        sd, unmatched = rename_keys({_stage_numbers(k): v for k, v in sd.items()}, HF_RULES)
        notes = ["converted from the Hugging Face DetrForObjectDetection layout"]
    elif (bare := backbone_only(state_dict, model)) is not None:
        (sd, notes), unmatched = bare, []
    else:
        sd, unmatched, notes = dict(state_dict), [], []
    return finish_detector(sd, unmatched, notes, model, "it was trained with another backbone: build the matching "
                           "preset (detr_r50 / detr_r101) or pass backbone=<timm name> to create_model")


def _modernise(key: str) -> str:
    """Hub-era names → transformers-5 names, with the ``model.`` prefix dropped."""
    key = key.removeprefix("model.").replace("backbone.conv_encoder.", "backbone.").replace("out_proj", "o_proj")
    key = key.replace("backbone.model.", "backbone.")
    for part in ("fc1", "fc2"):
        if f".{part}." in key and ".mlp." not in key and key.startswith(("encoder.layers.", "decoder.layers.")):
            key = key.replace(f".{part}.", f".mlp.{part}.")
    return key


def _stage_numbers(key: str) -> str:
    """HF ResNet stage ``S`` (from 0) / conv ``J`` (from 0) → timm ``layer{S+1}`` / ``conv{J+1}``, ``bn{J+1}``."""
    if not key.startswith("backbone.encoder.stages."):
        return key
    parts = key.split(".")
    parts[3] = str(int(parts[3]) + 1)
    if parts[6] == "layer":
        parts[7] = str(int(parts[7]) + 1)
    return ".".join(parts)
