"""RT-DETR: real-time end-to-end detection (Zhao et al. 2024, "DETRs Beat YOLOs on Real-time Object Detection",
§4 and Fig. 3).

image ─► CNN backbone (timm ResNet-vd, frozen BatchNorm), maps at strides 8 / 16 / 32 ─► 1×1 conv-BN projections
      ─► efficient hybrid encoder (AIFI on stride 32, CCFM fusion; ``rtdetr_encoder``) ─► 1×1 conv-BN projections,
         flattened into one memory of ``N = Σ h_l·w_l`` tokens
      ─► IoU-aware query selection (§4.3): every memory token predicts class scores and a box around its anchor; the
         ``Q`` tokens with the highest score become the decoder's initial queries and reference boxes
      ─► decoder (``rtdetr_decoder``): self-attention, deformable cross-attention, iterative box refinement, class
         and box heads after every layer.

There is no no-object class: each of the ``K`` logits is an independent sigmoid score. Training adds contrastive
denoising queries (``vitkit.detection``); the class embedding they use lives here (``denoising_class_embed``).
Checkpoints of Hugging Face ``RTDetrForObjectDetection`` load through ``vitkit.weights.rtdetr``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitkit.errors import ConfigError
from vitkit.layers import fold_frozen_batch_norm, freeze_batch_norm
from vitkit.models.detr import _contiguous_state, _frozen_parameters
from vitkit.models.rtdetr_decoder import PredictionMLP, RTDETRDecoder, inverse_sigmoid
from vitkit.models.rtdetr_encoder import HybridEncoder

STRIDES = (8, 16, 32)  # the backbone maps the encoder fuses; images are padded to a multiple of the last


@dataclass(frozen=True)
class RTDETRConfig:
    backbone: str = "resnet50d"  # any timm CNN with features_only and maps at strides 8, 16 and 32
    backbone_kwargs: tuple[tuple[str, Any], ...] = ()  # extra timm.create_model arguments (tiny test backbones)
    # The official PResNet gives the first block of every stage a projection shortcut, ResNet-18/34's first stage
    # included (a 1×1 conv-BN where timm has none); True adds it, so PResNet / Hugging Face weights fit.
    first_block_projection: bool = True
    backbone_norm: Literal["frozen", "batch"] = "frozen"  # as DETR: frozen pretrained statistics
    backbone_frozen_stages: int = 0  # the stem does not train (official freeze_at=0); -1 trains everything
    in_chans: int = 3
    num_classes: int = 80  # K sigmoid scores, no no-object class (COCO: 80)
    num_queries: int = 300  # Q queries selected from the encoder tokens
    encoder_dim: int = 256  # hybrid encoder width
    encoder_heads: int = 8
    encoder_ffn_dim: int = 1024
    encoder_depth: int = 1  # AIFI layers
    expansion: float = 1.0  # CSP hidden width / encoder width (0.5 for R18/R34)
    csp_blocks: int = 3  # RepVGG blocks per CSP fusion block
    dim: int = 256  # decoder width
    num_heads: int = 8
    dec_depth: int = 6
    dec_ffn_dim: int = 1024
    num_points: int = 4  # deformable sampling points per head and level
    num_denoising: int = 100  # denoising queries while training (0 = off); they need a class embedding
    label_noise_ratio: float = 0.5
    box_noise_scale: float = 1.0
    drop_rate: float = 0.0
    anchor_size: float = 0.05  # anchor box side at stride 8 (normalised), doubled per level
    pe_temperature: float = 10000.0
    aux_loss: bool = True  # also return every earlier decoder layer's and the encoder's predictions
    fused_attn: bool = True

    def __post_init__(self) -> None:
        for name in ("dim", "encoder_dim"):
            heads = self.num_heads if name == "dim" else self.encoder_heads
            if getattr(self, name) % heads or getattr(self, name) % 4:
                raise ValueError(f"{name}={getattr(self, name)} must be divisible by its heads ({heads}) and by 4")
        if self.num_classes < 1 or self.num_queries < 1 or self.dec_depth < 1:
            raise ValueError(f"num_classes={self.num_classes}, num_queries={self.num_queries} and "
                             f"dec_depth={self.dec_depth} must be >= 1")
        if self.num_denoising < 0:
            raise ValueError(f"num_denoising must be >= 0 (0 = off), got {self.num_denoising}")


class RTDETR(nn.Module):
    """RT-DETR detector: ``forward(images (B, 3, H, W), pixel_mask (B, H, W) | None) -> dict``.

    Any ``H, W`` works: images are zero-padded at the bottom and right to a multiple of 32, and boxes are reported
    relative to the unpadded image. ``pixel_mask`` (True = real pixel; padding at the bottom and right, as the
    datamodule pads) tells each image's own extent, and its boxes are reported relative to it. RT-DETR, like its
    official code and Hugging Face's, does not mask the padding inside the network, so padding does change what it
    sees; batches of one size avoid that.

    Output keys:
        ``pred_logits`` ``(B, Q, K)``: sigmoid class logits (no no-object class);
        ``pred_boxes`` ``(B, Q, 4)``: normalised ``(cx, cy, w, h)``;
        ``aux_outputs`` (``aux_loss``): ``dec_depth - 1`` dicts with the same keys, one per earlier decoder layer;
        ``enc_outputs`` (``aux_loss``): the same keys for the ``Q`` selected encoder tokens;
        ``dn_outputs`` (with ``denoising``): one dict per decoder layer for the denoising queries.
    """

    def __init__(self, config: RTDETRConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.backbone, self.feature_levels = _build_backbone(cfg)
        self.register_state_dict_post_hook(_contiguous_state)
        channels = [self.backbone.feature_info.channels()[i] for i in self.feature_levels]
        self.input_proj = nn.ModuleList([_conv_bn(c, cfg.encoder_dim) for c in channels])
        self.encoder = HybridEncoder(cfg.encoder_dim, num_heads=cfg.encoder_heads, ffn_dim=cfg.encoder_ffn_dim,
                                     depth=cfg.encoder_depth, expansion=cfg.expansion, num_blocks=cfg.csp_blocks,
                                     drop=cfg.drop_rate, temperature=cfg.pe_temperature, fused_attn=cfg.fused_attn)
        self.decoder_input_proj = nn.ModuleList([_conv_bn(cfg.encoder_dim, cfg.dim) for _ in STRIDES])
        if cfg.num_denoising > 0:  # index K = padding (no class)
            self.denoising_class_embed = nn.Embedding(cfg.num_classes + 1, cfg.dim, padding_idx=cfg.num_classes)
        self.enc_output = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.LayerNorm(cfg.dim))
        self.enc_score_head = nn.Linear(cfg.dim, cfg.num_classes)
        self.enc_bbox_head = PredictionMLP(cfg.dim, cfg.dim, 4, num_layers=3)
        self.decoder = RTDETRDecoder(cfg.dim, cfg.num_heads, cfg.dec_ffn_dim, cfg.dec_depth, cfg.num_classes,
                                     num_levels=len(STRIDES), num_points=cfg.num_points, drop=cfg.drop_rate,
                                     fused_attn=cfg.fused_attn)
        self.init_weights()

    def init_weights(self) -> None:
        """As the official code: class biases at the focal prior 0.01, last box layers zero (the anchor stands),
        Xavier-uniform class heads and denoising embedding."""
        self.init_class_heads()
        for mlp in [self.enc_bbox_head, *self.decoder.box_heads]:
            nn.init.zeros_(mlp.layers[-1].weight)
            nn.init.zeros_(mlp.layers[-1].bias)
        nn.init.xavier_uniform_(self.enc_output[0].weight)
        for layer in self.decoder.query_pos_head.layers:
            nn.init.xavier_uniform_(layer.weight)

    def init_class_heads(self) -> None:
        prior = -math.log((1 - 0.01) / 0.01)
        for head in [self.enc_score_head, *self.decoder.class_heads]:
            nn.init.xavier_uniform_(head.weight)
            nn.init.constant_(head.bias, prior)
        if self.config.num_denoising > 0:
            nn.init.xavier_uniform_(self.denoising_class_embed.weight)
            with torch.no_grad():
                self.denoising_class_embed.weight[self.config.num_classes].zero_()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute in the backward pass instead of storing activations (``layers.checkpointing``): the AIFI layers,
        the CCFM fusion blocks, the decoder layers and, with its BatchNorm frozen (the default), the timm backbone's
        stages (its own ``set_grad_checkpointing``, which leaves its first and last module as they are; with
        ``backbone_norm="batch"`` it would update the running statistics twice, so the backbone is not recomputed).
        Outputs, gradients and running statistics stay those of the plain step."""
        self.encoder.grad_checkpointing = self.decoder.grad_checkpointing = enable
        setter = getattr(self.backbone, "set_grad_checkpointing", None)
        if setter is not None and (self.config.backbone_norm == "frozen" or not enable):
            setter(enable)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh class heads (encoder score head, decoder class heads, denoising embedding) for ``num_classes``."""
        self.config = cfg = dataclasses.replace(self.config, num_classes=num_classes)
        like = self.enc_score_head.weight
        self.enc_score_head = nn.Linear(cfg.dim, num_classes).to(like)
        self.decoder.class_heads = nn.ModuleList([nn.Linear(cfg.dim, num_classes) for _ in range(cfg.dec_depth)]
                                                 ).to(like)
        if cfg.num_denoising > 0:
            self.denoising_class_embed = nn.Embedding(num_classes + 1, cfg.dim, padding_idx=num_classes).to(like)
        self.init_class_heads()

    def forward(self, images: Tensor, pixel_mask: Tensor | None = None, *, denoising: Any | None = None) -> dict:
        """``denoising``: (training) the ``vitkit.detection`` denoising group to prepend to the queries (its boxes
        relative to each unpadded image, as the targets); its outputs come back under ``dn_outputs``."""
        images, scale = self.pad(images, pixel_mask)
        memory, shapes = self.forward_features(images)
        queries, reference, enc_logits, enc_boxes = self.select_queries(memory, shapes)
        mask = None
        if denoising is not None:
            queries = torch.cat([denoising.queries, queries], dim=1)  # (B, D + Q, C)
            noised = inverse_sigmoid(denoising.reference_logits.sigmoid() / scale)  # to the padded image's units
            reference = torch.cat([noised, reference], dim=1)
            mask = denoising.attn_mask
        last_only = not (self.config.aux_loss or self.training)
        logits, boxes = self.decoder(queries, reference, memory, shapes, mask=mask, last_only=last_only)
        boxes = boxes * scale  # relative to the unpadded image
        out = {}
        if denoising is not None:
            n = denoising.queries.shape[1]
            out["dn_outputs"] = _predictions(logits[:, :, :n], boxes[:, :, :n])
            logits, boxes = logits[:, :, n:], boxes[:, :, n:]
        out.update(pred_logits=logits[-1], pred_boxes=boxes[-1])
        if self.config.aux_loss:
            out["aux_outputs"] = _predictions(logits[:-1], boxes[:-1])
            out["enc_outputs"] = {"pred_logits": enc_logits, "pred_boxes": enc_boxes * scale}
        return out

    def pad(self, images: Tensor, pixel_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Images zero-padded to a multiple of 32 and the cxcywh factor ``(4,)`` or ``(B, 1, 4)`` from padded to
        unpadded units."""
        if images.ndim != 4:
            raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
        B, _, H, W = images.shape
        if pixel_mask is not None and (pixel_mask.dtype != torch.bool or pixel_mask.shape != (B, H, W)):
            raise ValueError(f"pixel_mask must be a boolean (B, H, W) = {(B, H, W)} tensor (True = real pixel), "
                             f"got {pixel_mask.dtype} {tuple(pixel_mask.shape)}")
        s = STRIDES[-1]
        Hp, Wp = (H + s - 1) // s * s, (W + s - 1) // s * s  # not -(-H // s): ONNX integer Div truncates
        if pixel_mask is None:
            # tensor × scalar, not new_tensor([Wp / W, ...]): a traced graph (ONNX export) keeps the sizes symbolic
            x_axes = images.new_tensor([1.0, 0.0, 1.0, 0.0])
            scale = x_axes * (Wp / W) + (1 - x_axes) * (Hp / H)
        else:  # each image's real height and width: rows / columns holding a real pixel
            h = pixel_mask.any(dim=2).sum(1).clamp(min=1).to(images.dtype)  # (B,)
            w = pixel_mask.any(dim=1).sum(1).clamp(min=1).to(images.dtype)
            scale = torch.stack([Wp / w, Hp / h, Wp / w, Hp / h], dim=-1)[:, None]  # (B, 1, 4)
        return F.pad(images, [0, Wp - W, 0, Hp - H]), scale

    def forward_features(self, images: Tensor) -> tuple[Tensor, list[tuple[int, int]]]:
        """Backbone and hybrid encoder: the decoder's memory ``(B, N, C)`` and the ``(h, w)`` of its levels."""
        feats = self.backbone(images.contiguous(memory_format=torch.channels_last))
        maps = self.encoder([proj(feats[i]) for proj, i in zip(self.input_proj, self.feature_levels, strict=True)])
        sources = [proj(m) for proj, m in zip(self.decoder_input_proj, maps, strict=True)]
        shapes = [tuple(s.shape[-2:]) for s in sources]
        memory = torch.cat([s.flatten(2).transpose(1, 2) for s in sources], dim=1)  # (B, N, C)
        return memory, shapes

    def select_queries(self, memory: Tensor, shapes: list[tuple[int, int]]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """IoU-aware query selection (§4.3): the ``Q`` best-scoring tokens' features (detached), their box logits,
        and the class logits ``(B, Q, K)`` and boxes ``(B, Q, 4)`` the encoder predicts for them."""
        Q, N = self.config.num_queries, memory.shape[1]
        if Q > N:
            raise ConfigError(f"num_queries={Q} exceeds the {N} encoder tokens of these images (levels {shapes})",
                              f"use larger images or set num_queries <= {N}")
        anchors, valid = anchor_logits(shapes, self.config.anchor_size, memory.device, memory.dtype)
        features = self.enc_output(memory * valid)  # (B, N, C); tokens whose anchor leaves the image are zeroed
        logits = self.enc_score_head(features)  # (B, N, K)
        box_logits = self.enc_bbox_head(features) + anchors  # (B, N, 4)
        top = logits.max(-1).values.topk(Q, dim=1).indices  # (B, Q)

        def pick(x: Tensor) -> Tensor:
            return x.gather(1, top[..., None].expand(-1, -1, x.shape[-1]))  # (B, Q, ·)

        reference = pick(box_logits)
        return pick(features).detach(), reference, pick(logits), reference.sigmoid()


def anchor_logits(shapes: list[tuple[int, int]], size: float, device: torch.device, dtype: torch.dtype
                  ) -> tuple[Tensor, Tensor]:
    """Anchor boxes ``(1, N, 4)`` in logit space, one per token (its cell centre, side ``size·2^level``), and
    ``(1, N, 1)`` whether the anchor lies inside the image (others get the dtype's max and a zero feature)."""
    anchors = []
    for level, (h, w) in enumerate(shapes):
        ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device,
                                dtype=dtype), indexing="ij")
        centres = torch.stack([(xs + 0.5) / w, (ys + 0.5) / h], -1)  # (h, w, 2)
        sides = torch.full_like(centres, size * 2.0**level)
        anchors.append(torch.cat([centres, sides], -1).reshape(h * w, 4))
    anchors = torch.cat(anchors)[None]  # (1, N, 4)
    valid = ((anchors > 0.01) & (anchors < 0.99)).all(-1, keepdim=True)  # (1, N, 1)
    logits = torch.log(anchors / (1 - anchors))
    return torch.where(valid, logits, torch.finfo(dtype).max), valid.to(dtype)


def _predictions(logits: Tensor, boxes: Tensor) -> list[dict[str, Tensor]]:
    """One ``{pred_logits, pred_boxes}`` dict per layer of ``(L, B, Q, ·)`` stacks."""
    return [{"pred_logits": a, "pred_boxes": b} for a, b in zip(logits, boxes, strict=True)]


def _conv_bn(in_chans: int, out_chans: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chans, out_chans, 1, bias=False), nn.BatchNorm2d(out_chans))


def _build_backbone(cfg: RTDETRConfig) -> tuple[nn.Module, list[int]]:
    """timm CNN returning all its feature levels, and the indices of those at strides 8, 16, 32; BatchNorm frozen
    (unless ``backbone_norm="batch"``), the first ``backbone_frozen_stages`` levels frozen."""
    import timm

    try:
        body = timm.create_model(cfg.backbone, pretrained=False, features_only=True, in_chans=cfg.in_chans,
                                 **dict(cfg.backbone_kwargs))
    except RuntimeError as e:  # timm raises RuntimeError for unknown names and models without features_only
        raise ValueError(f"backbone {cfg.backbone!r} is not a timm model usable with features_only=True ({e}); "
                         f"pick one of timm.list_models(), e.g. 'resnet50d'") from e
    reductions = body.feature_info.reduction()
    if not set(STRIDES) <= set(reductions):
        raise ValueError(f"backbone {cfg.backbone!r} has feature maps at strides {reductions}, not all of {STRIDES}")
    if cfg.first_block_projection:
        _add_first_projection(body)
    if cfg.backbone_norm == "frozen":
        freeze_batch_norm(body)
        fold_frozen_batch_norm(body)
    for p in _frozen_parameters(body, cfg.backbone_frozen_stages):
        p.requires_grad_(False)
    return body.to(memory_format=torch.channels_last), [reductions.index(s) for s in STRIDES]


def _add_first_projection(body: nn.Module) -> None:
    """PResNet's 1×1 conv-BN shortcut on the first block of a timm ResNet's first stage, where timm has none. The
    convolution starts as the identity (as does BatchNorm, up to its eps), so that a timm checkpoint, which has no
    such shortcut, gives timm's own network (``pretrained="backbone"``)."""
    layer1 = getattr(body, "layer1", None)
    block = layer1[0] if isinstance(layer1, nn.Sequential) and len(layer1) else None
    if block is None or getattr(block, "downsample", 0) is not None or not hasattr(block, "conv1"):
        return
    chans = block.conv1.in_channels
    projection = nn.Conv2d(chans, chans, 1, bias=False)
    nn.init.dirac_(projection.weight)
    block.downsample = nn.Sequential(nn.Identity(), projection, nn.BatchNorm2d(chans))


def _cfg(backbone: str, **kw: Any) -> RTDETRConfig:
    return RTDETRConfig(backbone=backbone, **kw)


_SMALL = dict(expansion=0.5)
PRESETS = {
    # The paper's models (Table 2), shaped like the official / Hugging Face checkpoints (80 classes, 300 queries).
    "rtdetr_r18vd": _cfg("resnet18d", dec_depth=3, **_SMALL),
    "rtdetr_r34vd": _cfg("resnet34d", dec_depth=4, **_SMALL),
    "rtdetr_r50vd": _cfg("resnet50d"),
    "rtdetr_r101vd": _cfg("resnet101d", encoder_dim=384, encoder_ffn_dim=2048),
    # CPU-sized: ResNet-18-D, width 128, 3 decoder layers, 100 queries, 2 sampling points.
    "rtdetr_digits": _cfg("resnet18d", encoder_dim=128, encoder_heads=4, encoder_ffn_dim=256, dim=128, num_heads=4,
                          dec_depth=3, dec_ffn_dim=256, num_queries=100, num_classes=10, num_denoising=50,
                          **_SMALL),
    # For tests: a 1-block-per-stage ResNet-18-D of width 16, widths 32.
    "rtdetr_test": _cfg("resnet18d", backbone_kwargs=(("layers", (1, 1, 1, 1)), ("channels", (16, 32, 64, 128)),
                                                      ("stem_width", 8)),
                        num_classes=5, num_queries=10, encoder_dim=32, encoder_heads=2, encoder_ffn_dim=64, dim=32,
                        num_heads=2, dec_depth=2, dec_ffn_dim=64, num_denoising=20, **_SMALL),
}

MODEL = RTDETR
INPUT_SHAPE = (3, 640, 640)  # for FLOP counts: the paper's evaluation size
DESCRIPTIONS = {
    "rtdetr_r18vd": "RT-DETR R18vd (Zhao et al. 2024), 20M params, 46.5 COCO AP",
    "rtdetr_r34vd": "RT-DETR R34vd, 31M params",
    "rtdetr_r50vd": "RT-DETR R50vd, 42M params, 53.1 COCO AP",
    "rtdetr_r101vd": "RT-DETR R101vd, 76M params, 54.3 COCO AP",
    "rtdetr_digits": "ResNet-18-D RT-DETR for CPU experiments",
    "rtdetr_test": "tiny, for tests",
}
