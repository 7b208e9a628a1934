"""Layer-wise learning-rate decay (Clark et al. 2020, ELECTRA; BEiT, Bao et al. 2021): layer ``i`` of ``L`` learns at
``lr · decay^(L − i)``, so the input embedding moves least and the head most.

Depth ids: 0 for the input embedding (with the class token and position table), 1…N for the blocks in order, N + 1
for the final norm and the head. A CvT stage's embedding shares the id of the stage's first block (it starts the
stage; stage 0's embedding is the input, 0). timm models use their own ``group_matcher``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from torch import nn


def layer_ids(model: nn.Module) -> dict[str, int]:
    """``{parameter name: depth id}`` for every parameter of a vitkit ViT / CvT or a timm model."""
    from vitkit.models.cvt import CvT
    from vitkit.models.vit import VisionTransformer

    names = [n for n, _ in model.named_parameters()]
    if isinstance(model, VisionTransformer):
        top = model.config.depth + 1
        return {n: _vit_id(n, top) for n in names}
    if isinstance(model, CvT):
        depths = [s.depth for s in model.config.stages]
        return {n: _cvt_id(n, depths) for n in names}
    if hasattr(model, "group_matcher"):
        from timm.models import group_parameters

        return group_parameters(model, model.group_matcher(coarse=False), reverse=True)
    raise ValueError(f"layer-wise lr decay needs to know the depth of each parameter of {type(model).__name__}: "
                     f"supported are vitkit ViT and CvT and timm models with group_matcher(); unset layer_decay")


def layer_decay_scale(model: nn.Module, decay: float) -> Callable[[str], float]:
    """``lr_scale(name)`` for ``tasks.optim.param_groups``: ``decay ** (top id − id(name))``."""
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"layer_decay={decay} must lie in (0, 1]; typical fine-tuning values are 0.65–0.85")
    ids = layer_ids(model)
    top = max(ids.values())
    return lambda name: decay ** (top - ids[name])


def _vit_id(name: str, top: int) -> int:
    m = re.match(r"blocks\.(\d+)\.", name)
    if m:
        return int(m.group(1)) + 1
    return 0 if name.startswith(("patch_embed.", "cls_token", "pos_embed")) else top


def _cvt_id(name: str, depths: list[int]) -> int:
    m = re.match(r"stages\.(\d+)\.(?:blocks\.(\d+)\.)?", name)
    if not m:
        return sum(depths) + 1  # final norm, head
    stage = int(m.group(1))
    first = sum(depths[:stage]) + 1  # id of the stage's first block
    if m.group(2) is not None:
        return first + int(m.group(2))
    return 0 if stage == 0 else first  # the stage's embedding (and class token)
