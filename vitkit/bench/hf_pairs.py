"""A vitkit model and the Hugging Face model of the same architecture, holding the same weights, for benchmarks.

``PAIRS[family](preset, ...)`` returns an ``HFPair``: both models (fresh Hugging Face weights, loaded into vitkit
through ``create_model(preset, checkpoint=...)`` so the converter is exercised), a batch maker, and per side the
training loss and the main output of one batch, so a benchmark can time a training step, time inference and check
that the outputs agree without knowing the family. Regularisers are set alike on both sides (stochastic depth off,
which the two libraries apply differently; DETR's dropout everywhere, as the paper).

RT-DETR's queries are the top-``Q`` encoder tokens, and random weights leave many scores within rounding of each
other, so the two sides may list the same queries in another order: its ``output`` sorts every column over the
queries (a permutation of the same queries gives the same sorted columns, and sorting never enlarges the largest
difference).

Imports ``transformers`` inside the functions: it is a benchmark dependency, not one of vitkit's.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Batch = dict[str, Any]


@dataclass
class HFPair:
    """``ours``/``theirs`` hold the same weights. ``batch(n, size, device)`` makes one batch of ``n`` images of
    ``size``×``size`` (seeded); ``loss[i](batch)`` is side ``i``'s training loss (0: vitkit, 1: Hugging Face) and
    ``output[i](batch)`` its main output (logits, or detection logits and boxes flattened side by side)."""

    ours: nn.Module
    theirs: nn.Module
    batch: Callable[[int, int, torch.device], Batch]
    loss: tuple[Callable[[Batch], Tensor], Callable[[Batch], Tensor]]
    output: tuple[Callable[[Batch], Tensor], Callable[[Batch], Tensor]]

    def to(self, device: torch.device) -> HFPair:
        self.ours.to(device)
        self.theirs.to(device)
        return self


def _load_ours(preset: str, theirs: nn.Module, **overrides: Any) -> nn.Module:
    """``preset`` built by ``create_model`` from ``theirs``'s state dict, written as a Hugging Face checkpoint."""
    from safetensors.torch import save_file

    from vitkit import create_model

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_file({k: v.contiguous() for k, v in theirs.state_dict().items()}, str(path))
        return create_model(preset, checkpoint=path, **overrides)


def cvt_hf_config(cfg: Any):
    """The Hugging Face ``CvtConfig`` of vitkit CvT config ``cfg``'s architecture, stochastic depth off."""
    from transformers import CvtConfig

    st = cfg.stages
    return CvtConfig(
        num_channels=cfg.in_chans, num_labels=cfg.num_classes,
        patch_sizes=[s.patch_size for s in st], patch_stride=[s.patch_stride for s in st],
        patch_padding=[s.patch_padding for s in st], embed_dim=[s.dim for s in st],
        num_heads=[s.num_heads for s in st], depth=[s.depth for s in st], mlp_ratio=[s.mlp_ratio for s in st],
        attention_drop_rate=[0.0] * len(st), drop_rate=[0.0] * len(st), drop_path_rate=[0.0] * len(st),
        qkv_bias=[s.qkv_bias for s in st], cls_token=[cfg.class_token and i == len(st) - 1 for i in range(len(st))],
        kernel_qkv=[s.kernel_qkv for s in st], padding_kv=[s.kernel_qkv // 2 for s in st],
        stride_kv=[s.stride_kv for s in st], padding_q=[s.kernel_qkv // 2 for s in st],
        stride_q=[s.stride_q for s in st],
    )


def cvt_pair(preset: str = "cvt_13") -> HFPair:
    """vitkit CvT ``preset`` and ``CvtForImageClassification`` with its weights; cross-entropy on random labels."""
    from transformers import CvtForImageClassification

    from vitkit.models import build_config

    cfg = build_config(preset, drop_path_rate=0.0)
    theirs = CvtForImageClassification(cvt_hf_config(cfg))
    ours = _load_ours(preset, theirs, drop_path_rate=0.0)

    def batch(n: int, size: int, device: torch.device) -> Batch:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, cfg.in_chans, size, size, generator=g)
        return {"x": x.to(device), "y": torch.randint(0, cfg.num_classes, (n,), generator=g).to(device)}

    outputs = (lambda b: ours(b["x"]), lambda b: theirs(pixel_values=b["x"]).logits)
    losses = tuple((lambda b, out=out: F.cross_entropy(out(b), b["y"])) for out in outputs)
    return HFPair(ours, theirs, batch, losses, outputs)


def detr_models(preset: str = "detr_r50", attn_drop: float = 0.1):
    """vitkit DETR ``preset`` and ``DetrForObjectDetection`` with its weights and the same frozen parameters, and
    vitkit's config.

    Transformers 5 freezes nothing in a timm backbone (its rule looks for "resnet" in the backbone's model type,
    "timm_backbone"); the official code and vitkit freeze the stem and first stage, so the same set is frozen in
    the Hugging Face model. Its default ``activation_dropout=0`` drops the official FFN dropout after the
    activation: it is set to the model's dropout so both do the same dropout work."""
    from transformers import DetrConfig, DetrForObjectDetection

    from vitkit.models import build_config

    cfg = build_config(preset, attn_drop_rate=attn_drop)
    hf_cfg = DetrConfig(
        backbone=cfg.backbone, d_model=cfg.dim, encoder_layers=cfg.enc_depth, decoder_layers=cfg.dec_depth,
        encoder_attention_heads=cfg.num_heads, decoder_attention_heads=cfg.num_heads,
        encoder_ffn_dim=int(cfg.dim * cfg.mlp_ratio), decoder_ffn_dim=int(cfg.dim * cfg.mlp_ratio),
        num_queries=cfg.num_queries, num_labels=cfg.num_classes, dropout=cfg.drop_rate,
        activation_dropout=cfg.drop_rate, attention_dropout=cfg.attn_drop_rate, auxiliary_loss=cfg.aux_loss,
    )
    theirs = DetrForObjectDetection(hf_cfg)
    ours = _load_ours(preset, theirs, attn_drop_rate=attn_drop)
    frozen = {n for n, p in ours.named_parameters() if not p.requires_grad}
    for name, p in theirs.named_parameters():
        if name.replace("model.backbone.model.", "backbone.") in frozen:
            p.requires_grad_(False)
    return ours, theirs, cfg


def detection_batch(n: int, size: int, num_classes: int, boxes_per_image: int = 5,
                    device: torch.device | str = "cpu") -> Batch:
    """Seeded images ``(n, 3, size, size)``, a padding mask (True = image; every image after the first is padded on
    the right, as in real batches) and ``boxes_per_image`` random cxcywh boxes with labels per image."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, size, size, generator=g)
    mask = torch.ones(n, size, size, dtype=torch.bool)
    mask[1:, :, size * 3 // 4:] = False
    targets = []
    for _ in range(n):
        centre = torch.rand(boxes_per_image, 2, generator=g) * 0.5 + 0.25
        wh = torch.rand(boxes_per_image, 2, generator=g) * 0.3 + 0.05
        labels = torch.randint(0, num_classes, (boxes_per_image,), generator=g)
        targets.append({"boxes": torch.cat([centre, wh], 1).to(device), "labels": labels.to(device)})
    return {"images": images.to(device), "mask": mask.to(device), "targets": targets}


def detr_pair(preset: str = "detr_r50", attn_drop: float = 0.1) -> HFPair:
    """``detr_models`` as a pair: vitkit's ``SetCriterion`` against Hugging Face's built-in loss, both with
    auxiliary losses."""
    from vitkit.detection import SetCriterion

    ours, theirs, cfg = detr_models(preset, attn_drop)
    criterion = SetCriterion(cfg.num_classes)

    def batch(n: int, size: int, device: torch.device) -> Batch:
        b = detection_batch(n, size, cfg.num_classes, device=device)
        b["hf_mask"] = b["mask"].long()
        b["hf_labels"] = [{"class_labels": t["labels"], "boxes": t["boxes"]} for t in b["targets"]]
        return b

    def loss_ours(b: Batch) -> Tensor:
        return criterion.to(b["images"].device)(ours(b["images"], b["mask"]), b["targets"])["loss"]

    def loss_theirs(b: Batch) -> Tensor:
        return theirs(pixel_values=b["images"], pixel_mask=b["hf_mask"], labels=b["hf_labels"]).loss

    def out_ours(b: Batch) -> Tensor:
        out = ours(b["images"], b["mask"])
        return torch.cat([out["pred_logits"].flatten(1), out["pred_boxes"].flatten(1)], 1)  # (B, Q·(K+1) + Q·4)

    def out_theirs(b: Batch) -> Tensor:
        out = theirs(pixel_values=b["images"], pixel_mask=b["hf_mask"])
        return torch.cat([out.logits.flatten(1), out.pred_boxes.flatten(1)], 1)  # (B, Q·(K+1) + Q·4)

    return HFPair(ours, theirs, batch, (loss_ours, loss_theirs), (out_ours, out_theirs))


RTDETR_BLOCKS = {"resnet18d": ("basic", (2, 2, 2, 2)), "resnet34d": ("basic", (3, 4, 6, 3)),
                 "resnet50d": ("bottleneck", (3, 4, 6, 3)), "resnet101d": ("bottleneck", (3, 4, 23, 3))}


def rtdetr_hf_config(cfg: Any):
    """The Hugging Face ``RTDetrConfig`` of vitkit RT-DETR config ``cfg`` (its PResNet-vd backbone with the depths,
    widths and stem of ``cfg.backbone`` and ``cfg.backbone_kwargs``)."""
    from transformers import RTDetrConfig, RTDetrResNetConfig

    kind, depths = RTDETR_BLOCKS[cfg.backbone]
    kw = dict(cfg.backbone_kwargs)
    hidden = [c * (4 if kind == "bottleneck" else 1) for c in kw.get("channels", (64, 128, 256, 512))]
    backbone = RTDetrResNetConfig(embedding_size=2 * kw.get("stem_width", 32), hidden_sizes=hidden,
                                  depths=list(kw.get("layers", depths)), layer_type=kind,
                                  out_features=["stage2", "stage3", "stage4"])
    return RTDetrConfig(backbone_config=backbone, encoder_in_channels=hidden[1:], encoder_hidden_dim=cfg.encoder_dim,
                        encoder_attention_heads=cfg.encoder_heads, encoder_ffn_dim=cfg.encoder_ffn_dim,
                        hidden_expansion=cfg.expansion, d_model=cfg.dim, decoder_in_channels=[cfg.encoder_dim] * 3,
                        decoder_attention_heads=cfg.num_heads, decoder_ffn_dim=cfg.dec_ffn_dim,
                        decoder_layers=cfg.dec_depth, num_queries=cfg.num_queries, num_labels=cfg.num_classes,
                        num_denoising=cfg.num_denoising, decoder_n_points=cfg.num_points)


def rtdetr_models(preset: str = "rtdetr_r50vd"):
    """vitkit RT-DETR ``preset`` and ``RTDetrForObjectDetection`` with its weights and the same frozen stem (vitkit
    freezes it, as the official code; Hugging Face's stem is frozen here to match), and vitkit's config."""
    from transformers import RTDetrForObjectDetection

    from vitkit.models import build_config

    cfg = build_config(preset)
    theirs = RTDetrForObjectDetection(rtdetr_hf_config(cfg))
    ours = _load_ours(preset, theirs)
    for name, p in theirs.named_parameters():
        if name.startswith("model.backbone.model.embedder."):
            p.requires_grad_(False)
    return ours, theirs, cfg


def _sorted_queries(logits: Tensor, boxes: Tensor) -> Tensor:
    """``(B, Q·(K+4))``: every class and box column sorted over the ``Q`` queries (their order is not compared)."""
    return torch.cat([logits, boxes], -1).sort(dim=1).values.flatten(1)  # (B, Q, K+4) → (B, Q·(K+4))


def rtdetr_pair(preset: str = "rtdetr_r50vd") -> HFPair:
    """``rtdetr_models`` as a pair, both training with ``num_denoising`` contrastive denoising queries: vitkit's
    ``make_denoising_group`` + ``RTDETRCriterion`` against Hugging Face's built-in loss. Whole images, no padding
    mask (RT-DETR does not mask padding inside the network)."""
    from vitkit.detection import RTDETRCriterion, make_denoising_group

    ours, theirs, cfg = rtdetr_models(preset)
    criterion = RTDETRCriterion(cfg.num_classes)

    def batch(n: int, size: int, device: torch.device) -> Batch:
        b = detection_batch(n, size, cfg.num_classes, device=device)
        b["hf_labels"] = [{"class_labels": t["labels"], "boxes": t["boxes"]} for t in b["targets"]]
        return b

    def loss_ours(b: Batch) -> Tensor:
        dn = make_denoising_group(b["targets"], ours.denoising_class_embed, num_queries=cfg.num_queries,
                                  num_denoising=cfg.num_denoising)
        return criterion.to(b["images"].device)(ours(b["images"], denoising=dn), b["targets"], dn)["loss"]

    def loss_theirs(b: Batch) -> Tensor:
        return theirs(pixel_values=b["images"], labels=b["hf_labels"]).loss

    def out_ours(b: Batch) -> Tensor:
        out = ours(b["images"])
        return _sorted_queries(out["pred_logits"], out["pred_boxes"])

    def out_theirs(b: Batch) -> Tensor:
        out = theirs(pixel_values=b["images"])
        return _sorted_queries(out.logits, out.pred_boxes)

    return HFPair(ours, theirs, batch, (loss_ours, loss_theirs), (out_ours, out_theirs))


# family → pairing (scripts/gpu_check.py measures every one)
PAIRS: dict[str, Callable[..., HFPair]] = {"cvt": cvt_pair, "detr": detr_pair, "rtdetr": rtdetr_pair}


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall-clock, CPU) seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def alternate(fn_a: Callable[[], Any], fn_b: Callable[[], Any], warmup: int, repeats: int
              ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """``timed`` runs of two sides of a pair, back to back after ``warmup`` calls of each; the order flips every
    repeat so that neither side always runs first."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    a, b = [], []
    for i in range(repeats):
        first, second = (fn_b, fn_a) if i % 2 else (fn_a, fn_b)
        t1, t2 = timed(first), timed(second)
        a.append(t2 if i % 2 else t1)
        b.append(t1 if i % 2 else t2)
    return a, b
