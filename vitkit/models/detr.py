"""DETR: end-to-end object detection with Transformers (Carion et al. 2020, "End-to-End Object Detection with
Transformers", §3.2 and Fig. 2).

image ─► CNN backbone (timm, frozen BatchNorm) ─► 1×1 projection to C ─► + masked sine positions (appendix A.4)
      ─► post-norm Transformer encoder ─► decoder: Q learned object queries attend to themselves and to the memory
      ─► after every decoder layer (shared final LayerNorm): class head (K + 1 logits, the last = no-object) and
         3-layer box MLP (sigmoid → normalised cxcywh).

The last decoder layer gives the predictions; the earlier ones feed the auxiliary losses (§3.2, "Auxiliary decoding
losses"). Positions are added to queries and keys, never to values, in every attention (appendix A.3). Losses and
matching live in ``vitkit.detection``; checkpoints of the official code and of Hugging Face load through
``vitkit.weights.detr``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitkit.layers import Block, DecoderBlock, fold_frozen_batch_norm, freeze_batch_norm, masked_sine_2d, masks
from vitkit.layers.checkpointing import run_block


@dataclass(frozen=True)
class DETRConfig:
    backbone: str = "resnet50"  # any timm CNN with features_only; its feature map at backbone_level feeds the encoder
    # timm feature level feeding the Transformer: -1 = the last (the paper). A lower level drops the later stages
    # (for a ResNet, 3 = layer3 at stride 16 without layer4): a finer, cheaper map for small objects on small images.
    backbone_level: int = -1
    backbone_frozen_stages: int = 1  # stem + this many stages do not train (timm feature levels; DETR: stem+layer1)
    # "frozen": BatchNorm with the pretrained statistics, folded into the convolutions (the paper). "batch": ordinary
    # trainable BatchNorm, for a backbone trained from scratch — frozen fresh statistics would be meaningless, and
    # timm zero-initialises each residual block's last BN scale, which frozen would keep at zero for good.
    backbone_norm: Literal["frozen", "batch"] = "frozen"
    output_stride: int = 32  # 16 dilates the last stage (the paper's DC5 variant)
    in_chans: int = 3
    num_classes: int = 91  # K, without no-object; 91 = max COCO category id + 1, the official head size
    num_queries: int = 100  # N object slots, the most objects one image can yield
    dim: int = 256
    num_heads: int = 8
    enc_depth: int = 6
    dec_depth: int = 6
    mlp_ratio: float = 8.0  # FFN width 2048 = 8 × 256
    drop_rate: float = 0.1  # dropout in every residual branch and FFN, as the paper
    attn_drop_rate: float = 0.1  # dropout on attention weights (nn.MultiheadAttention's dropout in the official code)
    aux_loss: bool = True  # also return every decoder layer's predictions for the auxiliary losses
    fused_attn: bool = True

    def __post_init__(self) -> None:
        if self.dim % self.num_heads or self.dim % 4:
            raise ValueError(f"dim={self.dim} must be divisible by num_heads={self.num_heads} and by 4 "
                             f"(sine positions)")
        if self.num_classes < 1 or self.num_queries < 1:
            raise ValueError(f"num_classes={self.num_classes} and num_queries={self.num_queries} must be >= 1")
        if self.output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 32 or 16 (DC5), got {self.output_stride}")


class DETR(nn.Module):
    """DETR detector: ``forward(images (B, 3, H, W), pixel_mask (B, H, W) | None) -> dict``.

    ``pixel_mask`` is boolean, ``True`` = real pixel, ``False`` = padding added to batch images of different sizes
    (the Hugging Face convention; the official code's ``True`` = padding is its negation). ``None`` = no padding.

    Output keys:
        ``pred_logits`` ``(B, Q, K+1)``: class logits, the last one no-object;
        ``pred_boxes`` ``(B, Q, 4)``: boxes as normalised ``(cx, cy, w, h)`` in ``[0, 1]``, relative to the unpadded
        image;
        ``aux_outputs``: (``aux_loss`` only) a list of ``dec_depth - 1`` dicts with the same two keys, one per
        earlier decoder layer.
    """

    def __init__(self, config: DETRConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.backbone = _build_backbone(cfg)
        self.register_state_dict_post_hook(_contiguous_state)
        self.input_proj = nn.Conv2d(self.backbone.feature_info.channels()[-1], cfg.dim, kernel_size=1)
        self.encoder = nn.ModuleList([
            Block(cfg.dim, cfg.num_heads, mlp_ratio=cfg.mlp_ratio, proj_drop=cfg.drop_rate,
                  attn_drop=cfg.attn_drop_rate, norm_first=False, act_layer=nn.ReLU, fused_attn=cfg.fused_attn)
            for _ in range(cfg.enc_depth)
        ])
        self.decoder = nn.ModuleList([
            DecoderBlock(cfg.dim, cfg.num_heads, mlp_ratio=cfg.mlp_ratio, proj_drop=cfg.drop_rate,
                         attn_drop=cfg.attn_drop_rate, norm_first=False, act_layer=nn.ReLU, fused_attn=cfg.fused_attn)
            for _ in range(cfg.dec_depth)
        ])
        self.decoder_norm = nn.LayerNorm(cfg.dim)
        self.query_embed = nn.Parameter(torch.empty(cfg.num_queries, cfg.dim))
        self.class_head = nn.Linear(cfg.dim, cfg.num_classes + 1)
        self.box_head = _box_mlp(cfg.dim)
        self.grad_checkpointing = False
        self.init_weights()

    def init_weights(self) -> None:
        """As the official code: Xavier-uniform Transformer matrices, N(0, 1) queries, PyTorch defaults elsewhere."""
        for module in (self.encoder, self.decoder):
            for p in module.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        nn.init.normal_(self.query_embed)

    def no_weight_decay(self) -> set[str]:
        return {"query_embed"}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each encoder and decoder block in the backward pass instead of storing its activations
        (``layers.checkpointing``); the CNN backbone stores its activations as usual."""
        self.grad_checkpointing = enable

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def reset_classifier(self, num_classes: int) -> None:
        """New class head for ``num_classes`` object classes (plus no-object), freshly initialised; the config
        follows."""
        self.config = dataclasses.replace(self.config, num_classes=num_classes)
        self.class_head = nn.Linear(self.config.dim, num_classes + 1).to(self.query_embed)

    def forward(self, images: Tensor, pixel_mask: Tensor | None = None) -> dict:
        features, valid = self.forward_backbone(images, pixel_mask)  # (B, Cb, h, w), (B, h, w)
        memory, pos, mask = self.forward_encoder(features, valid, padded=pixel_mask is not None)
        hs = self.forward_decoder(memory, pos, mask)  # (L, B, Q, C)
        return self.forward_heads(hs)

    def forward_backbone(self, images: Tensor, pixel_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Backbone feature map at ``backbone_level`` ``(B, Cb, h, w)`` and the pixel mask downsampled to it
        ``(B, h, w)``."""
        if images.ndim != 4:
            raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
        B, _, H, W = images.shape
        if pixel_mask is not None and (pixel_mask.dtype != torch.bool or pixel_mask.shape != (B, H, W)):
            raise ValueError(f"pixel_mask must be a boolean (B, H, W) = {(B, H, W)} tensor (True = real pixel), "
                             f"got {pixel_mask.dtype} {tuple(pixel_mask.shape)}")
        # Channels-last activations and weights make oneDNN / cuDNN convolutions markedly faster (~30% for a
        # ResNet-50 forward on CPU); state dicts still hold contiguous tensors (see `_contiguous_state`).
        features = self.backbone(images.contiguous(memory_format=torch.channels_last))[-1]
        h, w = features.shape[-2:]
        if pixel_mask is None:
            valid = torch.ones(B, h, w, dtype=torch.bool, device=images.device)
        else:  # nearest-neighbour downsampling, as the official code and Hugging Face do
            valid = F.interpolate(pixel_mask[:, None].float(), size=(h, w), mode="nearest")[:, 0] > 0.5
        return features, valid

    def forward_encoder(self, features: Tensor, valid: Tensor, *,
                        padded: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """Memory ``(B, h·w, C)``, its positions ``(B, h·w, C)`` and key mask (None when nothing is padding).
        ``padded=False`` (no pixel mask was given) skips looking at ``valid``: a branch on its values is data-dependent,
        which ``torch.export`` cannot trace."""
        x = self.input_proj(features).flatten(2).transpose(1, 2)  # (B, h·w, C)
        pos = masked_sine_2d(valid, self.config.dim).to(x.dtype)  # (B, h·w, C)
        mask = masks.key_padding(valid.flatten(1)) if padded and not bool(valid.all()) else None  # (B, 1, 1, h·w)
        for block in self.encoder:
            x = run_block(block, x, pos=pos, mask=mask, checkpoint=self.grad_checkpointing)
        return x, pos, mask

    def forward_decoder(self, memory: Tensor, pos: Tensor, mask: Tensor | None) -> Tensor:
        """Normalised decoder states ``(L, B, Q, C)``: every layer with ``aux_loss``, else only the last (L = 1)."""
        B = memory.shape[0]
        query_pos = self.query_embed.to(memory.dtype)[None].expand(B, -1, -1)  # (B, Q, C)
        x = torch.zeros_like(query_pos)  # the decoder input starts empty; queries enter as positions
        states = []
        for i, block in enumerate(self.decoder):
            x = run_block(block, x, memory, query_pos=query_pos, memory_pos=pos, memory_mask=mask,
                          checkpoint=self.grad_checkpointing)
            if self.config.aux_loss or i == len(self.decoder) - 1:
                states.append(self.decoder_norm(x))
        return torch.stack(states)  # (L, B, Q, C)

    def forward_heads(self, hs: Tensor) -> dict:
        logits = self.class_head(hs)  # (L, B, Q, K+1)
        boxes = self.box_head(hs).sigmoid()  # (L, B, Q, 4)
        out = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        if self.config.aux_loss:
            pairs = zip(logits[:-1], boxes[:-1], strict=True)
            out["aux_outputs"] = [{"pred_logits": a, "pred_boxes": b} for a, b in pairs]
        return out


def _box_mlp(dim: int) -> nn.Sequential:
    """3-layer perceptron with ReLU predicting the 4 box coordinates (before the sigmoid)."""
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 4))


def _build_backbone(cfg: DETRConfig) -> nn.Module:
    """timm CNN returning its feature map at ``backbone_level``; BatchNorm frozen (unless ``backbone_norm="batch"``),
    stem and first stages frozen."""
    import timm

    kwargs = {"output_stride": cfg.output_stride} if cfg.output_stride != 32 else {}
    try:
        body = timm.create_model(cfg.backbone, pretrained=False, features_only=True, out_indices=(cfg.backbone_level,),
                                 in_chans=cfg.in_chans, **kwargs)
    except RuntimeError as e:  # timm raises RuntimeError for unknown names and models without features_only
        raise ValueError(f"backbone {cfg.backbone!r} is not a timm model usable with features_only=True ({e}); "
                         f"pick one of timm.list_models(), e.g. 'resnet50'") from e
    except IndexError as e:  # timm's error for a feature level it does not have
        raise ValueError(f"backbone_level={cfg.backbone_level} is not a feature level of {cfg.backbone!r}; "
                         f"use -1 (the last) or a level in 0..{len(_feature_levels(cfg.backbone)) - 1}") from e
    if cfg.backbone_norm == "frozen":
        freeze_batch_norm(body)
        fold_frozen_batch_norm(body)
    for p in _frozen_parameters(body, cfg.backbone_frozen_stages):
        p.requires_grad_(False)
    return body.to(memory_format=torch.channels_last)


def _feature_levels(backbone: str) -> list[dict]:
    """timm's description (channels, reduction, module) of every feature level of ``backbone``."""
    import timm

    return timm.create_model(backbone, pretrained=False, features_only=True).feature_info.info


def _contiguous_state(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """State-dict hook: channels-last backbone weights are saved contiguous (safetensors refuses other strides)."""
    for key, value in state_dict.items():
        if isinstance(value, Tensor) and not value.is_contiguous():
            state_dict[key] = value.contiguous()


def _frozen_parameters(body: nn.Module, stages: int) -> list[nn.Parameter]:
    """Parameters up to and including timm feature level ``stages`` (0 = stem); all of them from the level that
    feeds the Transformer on."""
    if stages < 0:
        return []
    info = body.feature_info.info
    if stages >= body.feature_info.out_indices[-1] % len(info):
        return list(body.parameters())
    target = info[stages]["module"]
    names = [n for n, _ in body.named_modules()]
    candidates = {target, target.replace(".", "_")}  # timm flattens nested stage names in FeatureListNet
    hits = [i for i, n in enumerate(names) if n in candidates or any(n.startswith(c + ".") for c in candidates)]
    if not hits:
        raise ValueError(f"cannot find backbone module {target!r} to freeze; set backbone_frozen_stages=-1")
    last = max(hits)
    modules = dict(body.named_modules())
    return [p for i, n in enumerate(names[: last + 1]) for p in modules[n].parameters(recurse=False)]


def _cfg(backbone: str, **kw) -> DETRConfig:
    return DETRConfig(backbone=backbone, **kw)


PRESETS = {
    # The paper's models (Table 1), shaped like the official checkpoints (91 + 1 classes, 100 queries).
    "detr_r50": _cfg("resnet50"),
    "detr_r101": _cfg("resnet101"),
    "detr_r50_dc5": _cfg("resnet50", output_stride=16),
    # CPU-sized: ResNet-18, width 128, 3 + 3 layers, 50 queries.
    "detr_small": _cfg("resnet18", dim=128, num_heads=8, enc_depth=3, dec_depth=3, mlp_ratio=4.0, num_queries=50),
    # For tests: timm's 0.4M-parameter test ResNet, width 32.
    "detr_test": _cfg("test_resnet", num_classes=5, num_queries=8, dim=32, num_heads=2, enc_depth=1, dec_depth=2,
                      mlp_ratio=2.0),
}

MODEL = DETR
INPUT_SHAPE = (3, 800, 1066)  # for FLOP counts: a COCO image at the paper's evaluation scale
DESCRIPTIONS = {
    "detr_r50": "DETR R50 (Carion et al. 2020), 41M params",
    "detr_r101": "DETR R101 (Carion et al. 2020)",
    "detr_r50_dc5": "DETR-DC5 R50: dilated last stage, stride 16",
    "detr_small": "ResNet-18 DETR for CPU experiments",
    "detr_test": "tiny, for tests",
}
