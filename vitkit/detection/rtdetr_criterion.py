"""RT-DETR's matcher and criterion (Zhao et al. 2024, §4.3 and the official training code).

Matching uses a focal-style class cost on the sigmoid scores (Lin et al. 2017, as Deformable DETR / DINO):

    C = w_class · [α(1 − p)^γ(−log p) − (1 − α)p^γ(−log(1 − p))] + w_L1 · ‖b − b̂‖₁ + w_giou · (−GIoU)

with weights 2 / 5 / 2, α = 0.25, γ = 2, computed in float32 with autocast off (as DETR's matcher).

The class loss is the varifocal loss (Zhang et al. 2021, "VarifocalNet", eq. 2): binary cross-entropy of every
class logit towards the IoU of its matched box for the matched class (IoU-aware: a well-placed box should score
high) and towards 0 elsewhere, the negatives weighted by ``α p^γ`` (α = 0.75). Boxes: L1 and GIoU on matched pairs.
Weights 1 / 5 / 2. Each loss is summed and divided by the number of target boxes; every decoder layer, the encoder's
selected queries and each denoising layer add their own terms (denoising with the known assignment, divided by the
boxes times the groups).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitkit import boxes as box_ops
from vitkit.detection.criterion import SetCriterion, _flat_indices
from vitkit.detection.denoising import DenoisingGroup
from vitkit.detection.matcher import _assign, _check_labels

LOSS_NAMES = ("loss_vfl", "loss_bbox", "loss_giou")


class FocalCostMatcher(nn.Module):
    """Hungarian matching with the focal class cost: ``forward(logits (B, Q, K), boxes (B, Q, 4), targets)`` →
    one ``(pred_idx, target_idx)`` pair per image (CPU long tensors), as ``HungarianMatcher``."""

    def __init__(self, cost_class: float = 2.0, cost_bbox: float = 5.0, cost_giou: float = 2.0, *,
                 alpha: float = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("all matcher costs are 0; at least one of cost_class, cost_bbox, cost_giou must be > 0")
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.alpha, self.gamma = alpha, gamma

    @torch.no_grad()
    def forward(self, pred_logits: Tensor, pred_boxes: Tensor, targets: list[dict[str, Tensor]]) -> list[tuple]:
        sizes = [len(t["boxes"]) for t in targets]
        if sum(sizes) == 0:
            empty = torch.empty(0, dtype=torch.long)
            return [(empty, empty) for _ in targets]
        _check_labels(torch.cat([t["labels"] for t in targets]).cpu(), pred_logits.shape[-1])
        cost = self.cost_matrix(pred_logits, pred_boxes, targets).cpu()  # (B, Q, T)
        if not torch.isfinite(cost).all():
            raise FloatingPointError("the matching cost has NaN/inf entries: the model produced non-finite logits or "
                                     "boxes (diverged training: lower the learning rate), or a target is not finite")
        return [_assign(c[i]) for i, c in enumerate(cost.split(sizes, dim=-1))]

    def cost_matrix(self, pred_logits: Tensor, pred_boxes: Tensor, targets: list[dict[str, Tensor]]) -> Tensor:
        device = pred_logits.device
        with torch.autocast(device_type=device.type, enabled=False):
            B, Q = pred_logits.shape[:2]
            labels = torch.cat([t["labels"] for t in targets]).to(device)  # (T,)
            tgt = torch.cat([t["boxes"] for t in targets]).to(device=device, dtype=torch.float32)  # (T, 4)
            p = pred_logits.float().flatten(0, 1).sigmoid()[:, labels]  # (B·Q, T)
            pos = self.alpha * (1 - p) ** self.gamma * -(p + 1e-8).log()
            neg = (1 - self.alpha) * p**self.gamma * -(1 - p + 1e-8).log()
            out = pred_boxes.float().flatten(0, 1)  # (B·Q, 4)
            giou = box_ops.generalized_box_iou(box_ops.cxcywh_to_xyxy(out), box_ops.cxcywh_to_xyxy(tgt))
            cost = self.cost_class * (pos - neg) + self.cost_bbox * torch.cdist(out, tgt, p=1) - self.cost_giou * giou
        return cost.view(B, Q, -1)


class RTDETRCriterion(nn.Module):
    """RT-DETR's loss over ``RTDETR.forward``'s dict: ``forward(outputs, targets, denoising=None) -> dict``.

    Returns ``{"loss": weighted total}`` plus ``loss_vfl``, ``loss_bbox``, ``loss_giou`` for the last layer, with
    ``_aux_i`` for earlier decoder layer ``i``, ``_enc`` for the encoder's selected queries and ``_dn_i`` for
    decoder layer ``i``'s denoising queries, and ``cardinality_error`` (|#scores > 0.5 − #targets|, no gradient).
    """

    def __init__(self, num_classes: int, *, matcher: FocalCostMatcher | None = None, weight_vfl: float = 1.0,
                 weight_bbox: float = 5.0, weight_giou: float = 2.0, alpha: float = 0.75, gamma: float = 2.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher or FocalCostMatcher()
        self.weights = {"loss_vfl": weight_vfl, "loss_bbox": weight_bbox, "loss_giou": weight_giou}
        self.alpha, self.gamma = alpha, gamma

    def forward(self, outputs: dict, targets: list[dict[str, Tensor]], denoising: DenoisingGroup | None = None
                ) -> dict[str, Tensor]:
        logits = outputs["pred_logits"]
        if logits.shape[-1] != self.num_classes:
            raise ValueError(f"pred_logits has {logits.shape[-1]} classes, expected num_classes = {self.num_classes}")
        num_boxes = SetCriterion.num_boxes(targets, logits.device)
        layers = [("", outputs, None)]
        layers += [(f"_aux_{i}", aux, None) for i, aux in enumerate(outputs.get("aux_outputs") or [])]
        if "enc_outputs" in outputs:
            layers.append(("_enc", outputs["enc_outputs"], None))
        if denoising is not None and "dn_outputs" in outputs:
            layers += [(f"_dn_{i}", dn, denoising) for i, dn in enumerate(outputs["dn_outputs"])]
        losses: dict[str, Tensor] = {}
        total = logits.new_zeros((), dtype=torch.float32)
        for suffix, out, dn in layers:
            if dn is None:
                indices, n = self.matcher(out["pred_logits"], out["pred_boxes"], targets), num_boxes
            else:
                indices, n = dn.matched, num_boxes * dn.num_groups
            for name, value in self.layer_losses(out, targets, indices, n).items():
                losses[name + suffix] = value
                total = total + self.weights[name] * value
        losses["cardinality_error"] = self.cardinality_error(logits, targets)
        return {"loss": total, **losses}

    def layer_losses(self, out: dict, targets: list[dict], indices: list[tuple], num_boxes: Tensor) -> dict:
        """``loss_vfl``, ``loss_bbox``, ``loss_giou`` of one set of predictions, in float32."""
        logits = out["pred_logits"].float()  # (B, Q, K)
        batch_idx, pred_idx = _flat_indices(indices, logits.device)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            src = out["pred_boxes"].float()[batch_idx, pred_idx]  # (M, 4)
            tgt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices, strict=True)]).to(src)  # (M, 4)
            src_xyxy, tgt_xyxy = box_ops.cxcywh_to_xyxy(src), box_ops.cxcywh_to_xyxy(tgt)
            labels = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices, strict=True)]).to(logits.device)
            iou = torch.diag(box_ops.box_iou(src_xyxy.detach(), tgt_xyxy))  # (M,)
            loss_vfl = self.varifocal(logits, batch_idx, pred_idx, labels, iou) / num_boxes
            loss_bbox = F.l1_loss(src, tgt, reduction="sum") / num_boxes
            loss_giou = (1 - box_ops.generalized_box_iou_pairs(src_xyxy, tgt_xyxy)).sum() / num_boxes
        return {"loss_vfl": loss_vfl, "loss_bbox": loss_bbox, "loss_giou": loss_giou}

    def varifocal(self, logits: Tensor, batch_idx: Tensor, pred_idx: Tensor, labels: Tensor, iou: Tensor) -> Tensor:
        """Summed varifocal loss: matched (query, class) entries aim at their IoU, all others at 0 with weight
        ``α p^γ``."""
        onehot = torch.zeros_like(logits)
        onehot[batch_idx, pred_idx, labels] = 1.0
        score = torch.zeros_like(logits)
        score[batch_idx, pred_idx, labels] = iou.to(logits.dtype)
        weight = self.alpha * logits.detach().sigmoid().pow(self.gamma) * (1 - onehot) + score
        return F.binary_cross_entropy_with_logits(logits, score, weight=weight, reduction="sum")

    @torch.no_grad()
    def cardinality_error(self, logits: Tensor, targets: list[dict[str, Tensor]]) -> Tensor:
        predicted = (logits.sigmoid().max(-1).values > 0.5).sum(1).float()  # (B,)
        expected = torch.tensor([float(len(t["labels"])) for t in targets], device=logits.device)
        return F.l1_loss(predicted, expected)

