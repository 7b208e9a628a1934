"""ViT checkpoints → vitkit ``VisionTransformer``: timm's layout (which is vitkit's).

vitkit's ViT uses timm's parameter names, so the conversion only adapts what depends on the image and input: the
position table is resampled to the model's grid (bicubic, antialiased, as timm does) and an RGB patch embedding is
folded to one input channel by summing over the channels.
"""

from __future__ import annotations

from torch import Tensor

from vitkit.layers import resample_pos_embed
from vitkit.models import VisionTransformer

HEAD_PREFIXES = ("head.",)


def convert(state_dict: dict[str, Tensor], model: VisionTransformer) -> tuple[dict[str, Tensor], list[str]]:
    sd, notes = dict(state_dict), []
    own = model.state_dict()
    pos = sd.get("pos_embed")
    if pos is not None and pos.shape != own["pos_embed"].shape and pos.shape[-1] == own["pos_embed"].shape[-1]:
        prefix = 1 if "cls_token" in sd else 0
        if prefix != model.num_prefix_tokens:
            return sd, notes  # class-token mismatch: left for the shape check to report
        sd["pos_embed"] = resample_pos_embed(pos, model.grid, num_prefix_tokens=prefix)
        notes.append(f"resampled pos_embed from {pos.shape[1] - prefix} to {model.grid[0]}×{model.grid[1]} positions")
    w = sd.get("patch_embed.proj.weight")
    target = own["patch_embed.proj.weight"]
    if w is not None and w.shape[1] != target.shape[1] and w.shape[0] == target.shape[0] and target.shape[1] == 1:
        sd["patch_embed.proj.weight"] = w.sum(dim=1, keepdim=True)
        notes.append(f"folded patch_embed from {w.shape[1]} input channels to 1 by summing")
    return sd, notes
