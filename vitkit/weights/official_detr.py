"""facebookresearch/detr checkpoints (``detr-r50-e632da11.pth`` etc.) → vitkit ``DETR``.

The official model is a torchvision ResNet with frozen BatchNorm under ``backbone.0.body.`` (the same module names
as timm's ResNet), and a sequence-first ``nn.Transformer`` copy under ``transformer.``: ``nn.MultiheadAttention``
keeps the query/key/value projections as one ``in_proj_weight`` ``(3C, C)`` with row blocks q, k, v — exactly
vitkit's ``qkv`` layout — and the output projection as ``out_proj``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from vitkit.weights.io import CheckpointError
from vitkit.weights.loading import key_differences, shape_difference
from vitkit.weights.renaming import rename_keys

if TYPE_CHECKING:
    from torch import nn

_LAYER = r"transformer\.(encoder|decoder)\.layers\.(\d+)\."
RULES = [
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


def is_official_detr(state_dict: dict[str, Tensor]) -> bool:
    return any(k.startswith(("transformer.encoder.", "backbone.0.body.")) for k in state_dict)


def convert_official_detr(state_dict: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    sd = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    sd, unmatched = rename_keys(sd, RULES)
    notes = ["converted from the official facebookresearch/detr layout"]
    if unmatched:
        notes.append(f"{len(unmatched)} keys of the official checkpoint have no vitkit counterpart: {unmatched[:5]}")
    return sd, notes


def check_backbone(state_dict: dict[str, Tensor], model: nn.Module) -> None:
    """Raise ``CheckpointError`` naming the keys when the checkpoint's backbone is not the model's."""
    own = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    theirs = {k: v for k, v in state_dict.items() if k.startswith("backbone.")}
    missing, extra, wrong = key_differences(own, theirs)
    shapes = [shape_difference(k, theirs, own) for k in wrong]
    if not (missing or extra or shapes):
        return
    parts = [f"the checkpoint's backbone does not match this model's backbone {model.config.backbone!r}"]
    if missing:
        parts.append(f"{len(missing)} backbone tensors missing from the checkpoint, e.g. {missing[:4]}")
    if extra:
        parts.append(f"{len(extra)} checkpoint backbone tensors unknown to the model, e.g. {extra[:4]}")
    if shapes:
        parts.append(f"{len(shapes)} differ in shape, e.g. {shapes[:3]}")
    parts.append("It was trained with another backbone: build the matching preset (detr_r50 / detr_r101) or pass "
                 "backbone=<timm name> to create_model.")
    raise CheckpointError("\n  ".join(parts))
