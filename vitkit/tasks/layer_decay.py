"""Layer-wise learning-rate decay (Clark et al. 2020, ELECTRA; BEiT, Bao et al. 2021): layer ``i`` of ``L`` learns at
``lr · decay^(L − i)``, so the input embedding moves least and the head most.

The depth of each parameter comes from the model's ``group_matcher(coarse=False)``, timm's convention, which vitkit's
ViT and CvT provide as timm's models do (ViT: the embedding 0, the blocks 1…N with the final norm joining the last
block, the head N + 1).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from vitkit.errors import ConfigError


def layer_ids(model: nn.Module) -> dict[str, int]:
    """``{parameter name: depth id}`` for every parameter of a model with ``group_matcher``."""
    if not hasattr(model, "group_matcher"):
        raise ConfigError(f"layer-wise lr decay needs the depth of each parameter of {type(model).__name__}, which "
                          f"it does not give (no group_matcher())",
                          "unset layer_decay, or use a ViT, CvT or timm model")
    from timm.models import group_parameters

    return group_parameters(model, model.group_matcher(coarse=False), reverse=True)


def layer_decay_scale(model: nn.Module, decay: float) -> Callable[[str], float]:
    """``lr_scale(name)``: ``decay ** (top id − id(name))``."""
    if not 0.0 < decay <= 1.0:
        raise ConfigError(f"layer_decay={decay} must lie in (0, 1]", "typical fine-tuning values are 0.65–0.85")
    ids = layer_ids(model)
    top = max(ids.values())
    return lambda name: decay ** (top - ids[name])
