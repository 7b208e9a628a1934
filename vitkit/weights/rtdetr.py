"""RT-DETR checkpoints → vitkit ``RTDETR``: Hugging Face ``RTDetrForObjectDetection`` (the ``PekingU/rtdetr_*``
model files), the official lyuwenyu/RT-DETR PyTorch code (``rtdetr_pytorch``), or vitkit's own.

Hugging Face: both layouts transformers has used — the current one (transformers 5: ``encoder.aifi.``, ``o_proj``,
``layers.N.mlp.fc1``) and that of the Hub files (``encoder.encoder.``, ``out_proj``, ``layers.N.fc1``, class and box
heads also at the top level). Separate ``q_proj``/``k_proj``/``v_proj`` are stacked into ``qkv``. The backbone is
Hugging Face's ``RTDetrResNet`` (the official PResNet-vd), renamed to the timm ResNet-D modules it corresponds to:
the deep stem ``embedder.embedder.{0,1,2}`` → ``conv1.{0,3,6}`` with norms ``conv1.{1,4}`` / ``bn1``; stage ``S``
block ``I`` conv ``J`` → ``layer{S+1}.I.conv{J+1}`` / ``bn{J+1}``; the (average-pooled) shortcut →
``downsample.{1,2}``. The backbone is checked against the model's: another variant is named as such.

Official: PResNet ``backbone.conv1.conv1_{1,2,3}`` and ``res_layers.S.blocks.I.branch2{a,b,c}`` / ``short``
(the same renaming), the hybrid encoder under ``encoder.`` with ``nn.MultiheadAttention`` (``in_proj_weight`` rows
q, k, v — vitkit's ``qkv``) and ``linear1/2``, the decoder under ``decoder.`` (``dec_score_head``,
``dec_bbox_head``, ``decoder.layers``). RepVGG kernels folded for deployment (``bottlenecks.N.conv``) are dropped:
vitkit folds its own (``fold_repvgg``). The released files wrap the weights in ``ema.module`` or ``model``.
RT-DETRv2 (``rtdetrv2_pytorch``, default ``cross_attn_method``, the same points on every level) differs only in
names (``encoder.input_proj.N.{conv,norm}``, ``enc_output.{proj,norm}``) and in buffers it saves that vitkit computes
(``decoder.anchors`` / ``valid_mask`` of its evaluation size, ``num_points_scale``), which are dropped.
A bare timm checkpoint of the backbone (``create_model(..., pretrained="backbone")``: timm's ImageNet ResNet-D, the
counterpart of the paper's ImageNet PResNet-vd) fills the backbone only, as for DETR; ResNet-18/34's added first-stage
shortcut (``first_block_projection``), which timm's weights lack, keeps its identity initialisation.
Checked against the official code, r18vd and r50vd of both, by ``scripts/check_official_rtdetr.py`` (outputs equal
to 4e-6) and by tests/weights/test_rtdetr_official_layout.py (their recorded key names and shapes).
"""

from __future__ import annotations

import re

from torch import Tensor

from vitkit.models import RTDETR
from vitkit.weights.loading import backbone_only, finish_detector
from vitkit.weights.renaming import rename_keys, stack_qkv

# PResNet's shortcut on ResNet-18/34's first block (``RTDETRConfig.first_block_projection``), which timm's ImageNet
# weights lack: it starts as the identity, so the backbone computes timm's network
_FIRST_PROJECTION = ("backbone.layer1.0.downsample.",)
# A new class count re-initialises the class scores: the encoder's, every decoder layer's and the denoising
# queries' class embedding. Boxes are class-agnostic and keep their weights.
HEAD_PREFIXES = ("enc_score_head.", "decoder.class_heads.", "denoising_class_embed.")

_BB = r"backbone\.model\."
_STAGE = _BB + r"encoder\.stages\.(\d+)\.layers\.(\d+)\."
_NORM = r"normalization\.(weight|bias|running_mean|running_var|num_batches_tracked)"
_AIFI = r"encoder\.aifi\.0\.layers\.(\d+)\."
_DEC = r"decoder\.layers\.(\d+)\."
_P = r"\.(weight|bias)"
HF_RULES = [
    (_BB + r"embedder\.embedder\.0\.convolution\.weight", "backbone.conv1.0.weight"),
    (_BB + r"embedder\.embedder\.0\." + _NORM, r"backbone.conv1.1.\1"),
    (_BB + r"embedder\.embedder\.1\.convolution\.weight", "backbone.conv1.3.weight"),
    (_BB + r"embedder\.embedder\.1\." + _NORM, r"backbone.conv1.4.\1"),
    (_BB + r"embedder\.embedder\.2\.convolution\.weight", "backbone.conv1.6.weight"),
    (_BB + r"embedder\.embedder\.2\." + _NORM, r"backbone.bn1.\1"),
    (_STAGE + r"shortcut\.(?:1\.)?convolution\.weight", r"backbone.layer\1.\2.downsample.1.weight"),
    (_STAGE + r"shortcut\.(?:1\.)?" + _NORM, r"backbone.layer\1.\2.downsample.2.\3"),
    (_STAGE + r"layer\.(\d+)\.convolution\.weight", r"backbone.layer\1.\2.conv\3.weight"),
    (_STAGE + r"layer\.(\d+)\." + _NORM, r"backbone.layer\1.\2.bn\3.\4"),
    (r"encoder_input_proj\.(.+)", r"input_proj.\1"),
    (_AIFI + r"self_attn\.qkv" + _P, r"encoder.aifi.\1.attn.qkv.\2"),
    (_AIFI + r"self_attn\.o_proj" + _P, r"encoder.aifi.\1.attn.proj.\2"),
    (_AIFI + r"self_attn_layer_norm" + _P, r"encoder.aifi.\1.norm1.\2"),
    (_AIFI + r"mlp\.(fc[12])" + _P, r"encoder.aifi.\1.mlp.\2.\3"),
    (_AIFI + r"final_layer_norm" + _P, r"encoder.aifi.\1.norm2.\2"),
    (r"(encoder\.(?:lateral_convs|fpn_blocks|downsample_convs|pan_blocks)\..+)", r"\1"),
    (r"((?:denoising_class_embed|enc_output|enc_score_head|enc_bbox_head|decoder_input_proj)\..+)", r"\1"),
    (_DEC + r"self_attn\.qkv" + _P, r"decoder.layers.\1.attn.qkv.\2"),
    (_DEC + r"self_attn\.o_proj" + _P, r"decoder.layers.\1.attn.proj.\2"),
    (_DEC + r"self_attn_layer_norm" + _P, r"decoder.layers.\1.norm1.\2"),
    (_DEC + r"encoder_attn\.(\w+)" + _P, r"decoder.layers.\1.cross_attn.\2.\3"),
    (_DEC + r"encoder_attn_layer_norm" + _P, r"decoder.layers.\1.norm2.\2"),
    (_DEC + r"mlp\.(fc[12])" + _P, r"decoder.layers.\1.mlp.\2.\3"),
    (_DEC + r"final_layer_norm" + _P, r"decoder.layers.\1.norm3.\2"),
    (r"decoder\.query_pos_head\.(.+)", r"decoder.query_pos_head.\1"),
    (r"decoder\.class_embed\.(\d+)" + _P, r"decoder.class_heads.\1.\2"),
    (r"decoder\.bbox_embed\.(\d+)\.(.+)", r"decoder.box_heads.\1.\2"),
]
_HF_QKV = (r"(?P<prefix>(?:encoder\.aifi\.0|decoder)\.layers\.\d+\.self_attn\.)"
           r"(?P<part>[qkv])_proj\.(?P<param>weight|bias)")


_ENC = r"encoder\.encoder\.0\.layers\.(\d+)\."
_ODEC = r"decoder\.decoder\.layers\.(\d+)\."
OFFICIAL_RULES = [
    (r"backbone\.conv1\.conv1_1\.conv\.weight", "backbone.conv1.0.weight"),
    (r"backbone\.conv1\.conv1_1\.norm\.(.+)", r"backbone.conv1.1.\1"),
    (r"backbone\.conv1\.conv1_2\.conv\.weight", "backbone.conv1.3.weight"),
    (r"backbone\.conv1\.conv1_2\.norm\.(.+)", r"backbone.conv1.4.\1"),
    (r"backbone\.conv1\.conv1_3\.conv\.weight", "backbone.conv1.6.weight"),
    (r"backbone\.conv1\.conv1_3\.norm\.(.+)", r"backbone.bn1.\1"),
    (r"(backbone\.layer\d\..+)", r"\1"),  # renamed by _official_block
    (r"encoder\.input_proj\.(\d+)\.(?:0|conv)\.weight", r"input_proj.\1.0.weight"),  # v1: Sequential, v2: named
    (r"encoder\.input_proj\.(\d+)\.(?:1|norm)\.(.+)", r"input_proj.\1.1.\2"),
    (_ENC + r"self_attn\.in_proj_(weight|bias)", r"encoder.aifi.\1.attn.qkv.\2"),
    (_ENC + r"self_attn\.out_proj" + _P, r"encoder.aifi.\1.attn.proj.\2"),
    (_ENC + r"linear([12])" + _P, r"encoder.aifi.\1.mlp.fc\2.\3"),
    (_ENC + r"(norm[12])" + _P, r"encoder.aifi.\1.\2.\3"),
    (r"(encoder\.(?:lateral_convs|fpn_blocks|downsample_convs|pan_blocks)\..+)", r"\1"),
    (r"decoder\.input_proj\.(\d+)\.conv\.weight", r"decoder_input_proj.\1.0.weight"),
    (r"decoder\.input_proj\.(\d+)\.norm\.(.+)", r"decoder_input_proj.\1.1.\2"),
    (_ODEC + r"self_attn\.in_proj_(weight|bias)", r"decoder.layers.\1.attn.qkv.\2"),
    (_ODEC + r"self_attn\.out_proj" + _P, r"decoder.layers.\1.attn.proj.\2"),
    (_ODEC + r"linear([12])" + _P, r"decoder.layers.\1.mlp.fc\2.\3"),
    (_ODEC + r"((?:norm[123]|cross_attn)\..+)", r"decoder.layers.\1.\2"),
    (r"decoder\.enc_output\.(?:0|proj)" + _P, r"enc_output.0.\1"),
    (r"decoder\.enc_output\.(?:1|norm)" + _P, r"enc_output.1.\1"),
    (r"decoder\.((?:denoising_class_embed|enc_score_head|enc_bbox_head)\..+)", r"\1"),
    (r"decoder\.query_pos_head\.(.+)", r"decoder.query_pos_head.\1"),
    (r"decoder\.dec_score_head\.(\d+)" + _P, r"decoder.class_heads.\1.\2"),
    (r"decoder\.dec_bbox_head\.(\d+)\.(.+)", r"decoder.box_heads.\1.\2"),
]
_DEPLOYED = re.compile(r"encoder\.\w+\.\d+\.bottlenecks\.\d+\.conv\.(weight|bias)")
# RT-DETRv2 also saves buffers vitkit computes: the anchors of its fixed evaluation size and 1 / points per level
_V2_BUFFERS = re.compile(r"decoder\.(anchors|valid_mask|decoder\.layers\.\d+\.cross_attn\.num_points_scale)")


def is_official(state_dict: dict[str, Tensor]) -> bool:
    return any(k.startswith(("backbone.res_layers.", "decoder.dec_score_head.", "encoder.input_proj."))
               for k in state_dict)


def is_hf(state_dict: dict[str, Tensor]) -> bool:
    return any(k.removeprefix("model.").startswith(("encoder_input_proj.", "enc_score_head.")) for k in state_dict)


def convert(state_dict: dict[str, Tensor], model: RTDETR) -> tuple[dict[str, Tensor], list[str]]:
    """Official (v1 or v2), Hugging Face or vitkit layout → ``model``'s names; the backbone is checked to be the
    model's."""
    if is_official(state_dict):
        deployed = [k for k in state_dict if _DEPLOYED.fullmatch(k)]
        computed = [k for k in state_dict if _V2_BUFFERS.fullmatch(k)]
        sd = {_official_block(k): v for k, v in state_dict.items() if k not in deployed and k not in computed}
        sd, unmatched = rename_keys(sd, OFFICIAL_RULES)
        v2 = bool(computed) or "decoder.enc_output.proj.weight" in state_dict
        notes = [f"converted from the official lyuwenyu/RT-DETR layout ({'rtdetrv2' if v2 else 'rtdetr'}_pytorch)"]
        if deployed:
            notes.append(f"dropped {len(deployed)} folded RepVGG kernels (the trainable branches are loaded)")
    elif is_hf(state_dict):
        sd = {_modernise(k): v for k, v in state_dict.items()}
        sd = stack_qkv(sd, _HF_QKV, r"\g<prefix>qkv.\g<param>")
        sd, unmatched = rename_keys({_numbers(k): v for k, v in sd.items()}, HF_RULES)
        notes = ["converted from the Hugging Face RTDetrForObjectDetection layout"]
    elif (bare := backbone_only(state_dict, model, _FIRST_PROJECTION)) is not None:
        (sd, notes), unmatched = bare, []
    else:
        sd, unmatched, notes = dict(state_dict), [], []
    return finish_detector(sd, unmatched, notes, model, "it is another variant: build the matching preset "
                           "(rtdetr_r18vd / r34vd / r50vd / r101vd) or pass backbone=<timm name> to create_model")


def _official_block(key: str) -> str:
    """PResNet ``res_layers.S.blocks.I.{branch2a,b,c | short[.conv]}.{conv,norm}`` → timm ``layer{S+1}.I.{convJ, bnJ
    | downsample.{1,2}}``."""
    m = re.fullmatch(r"backbone\.res_layers\.(\d+)\.blocks\.(\d+)\.(branch2([abc])|short(?:\.conv)?)"
                     r"\.(conv|norm)\.(.+)", key)
    if not m:
        return key
    if m[4]:
        j = "abc".index(m[4]) + 1
        part = f"conv{j}" if m[5] == "conv" else f"bn{j}"
    else:
        part = "downsample.1" if m[5] == "conv" else "downsample.2"
    return f"backbone.layer{int(m[1]) + 1}.{m[2]}.{part}.{m[6]}"


def _modernise(key: str) -> str:
    """Hub-era names → transformers-5 names, ``model.`` dropped; top-level heads → the decoder's."""
    key = key.removeprefix("model.")
    if key.startswith(("class_embed.", "bbox_embed.")):
        key = "decoder." + key
    key = key.replace("encoder.encoder.", "encoder.aifi.").replace(".out_proj.", ".o_proj.")
    return re.sub(r"^((?:encoder\.aifi\.0|decoder)\.layers\.\d+)\.(fc[12])\.", r"\1.mlp.\2.", key)


def _numbers(key: str) -> str:
    """Hugging Face stage ``S`` / conv ``J`` (from 0) → timm ``layer{S+1}`` / ``conv{J+1}``, ``bn{J+1}``."""
    m = re.match(r"(backbone\.model\.encoder\.stages\.)(\d+)(\.layers\.\d+\.)(?:(layer\.)(\d+)(\..*)|(.*))$", key)
    if not m:
        return key
    stage = int(m[2]) + 1
    if m[4]:
        return f"{m[1]}{stage}{m[3]}{m[4]}{int(m[5]) + 1}{m[6]}"
    return f"{m[1]}{stage}{m[3]}{m[7]}"


