"""DETR's set criterion (Carion et al. 2020, §3.1, eq. 2 and the box loss of §3.1 / appendix A.2).

After Hungarian matching, the loss is

    L = Σ_i [ λ_ce · CE(p̂_σ̂(i), c_i) ] + Σ_{i: c_i ≠ ∅} [ λ_L1 · ‖b_i − b̂_σ̂(i)‖₁ + λ_giou · (1 − GIoU(b_i, b̂_σ̂(i))) ]

with λ = 1 / 5 / 2. Unmatched predictions are trained towards the no-object class ∅ (the last logit), whose
cross-entropy weight is ``eos_coef`` = 0.1 to balance the many empty slots. The box losses are summed and divided
by the number of target boxes in the whole (distributed) batch. With auxiliary outputs the same loss is added for
every decoder layer, each matched on its own (appendix A.4).

Losses are computed in float32 whatever the autocast state, so huge or degenerate boxes cannot overflow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitkit import boxes as box_ops
from vitkit.detection.matcher import HungarianMatcher

LOSS_NAMES = ("loss_ce", "loss_bbox", "loss_giou")


class SetCriterion(nn.Module):
    """Set loss of DETR over the model's output dict (see ``vitkit.models.detr.DETR.forward``).

    Args:
        num_classes: object classes ``K`` (without no-object); logits have ``K + 1`` entries.
        matcher: defaults to ``HungarianMatcher(1, 5, 2)``.
        weight_ce, weight_bbox, weight_giou: loss weights λ.
        eos_coef: cross-entropy weight of the no-object class.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        matcher: HungarianMatcher | None = None,
        weight_ce: float = 1.0,
        weight_bbox: float = 5.0,
        weight_giou: float = 2.0,
        eos_coef: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher or HungarianMatcher()
        self.weights = {"loss_ce": weight_ce, "loss_bbox": weight_bbox, "loss_giou": weight_giou}
        class_weight = torch.ones(num_classes + 1)
        class_weight[-1] = eos_coef
        self.register_buffer("class_weight", class_weight, persistent=False)

    def forward(self, outputs: dict, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Losses for ``outputs`` (``pred_logits``, ``pred_boxes``, optional ``aux_outputs``) against ``targets``.

        Returns ``{"loss": weighted total, "loss_ce", "loss_bbox", "loss_giou"}`` for the last layer,
        ``"loss_ce_i"`` etc. for auxiliary layer ``i``, and ``"cardinality_error"`` (|#predicted objects − #targets|
        per image, a no-gradient sanity metric: stuck at the target count means the model predicts nothing).
        """
        logits = outputs["pred_logits"]
        if logits.shape[-1] != self.num_classes + 1:
            raise ValueError(f"pred_logits has {logits.shape[-1]} classes, expected num_classes + 1 = "
                             f"{self.num_classes + 1}")
        num_boxes = self.num_boxes(targets, logits.device)
        layers = [("", outputs)] + [(f"_{i}", aux) for i, aux in enumerate(outputs.get("aux_outputs") or [])]
        losses: dict[str, Tensor] = {}
        total = logits.new_zeros((), dtype=torch.float32)
        for suffix, out in layers:
            indices = self.matcher(out["pred_logits"], out["pred_boxes"], targets)
            for name, value in self.layer_losses(out, targets, indices, num_boxes).items():
                losses[name + suffix] = value
                total = total + self.weights[name] * value
        losses["cardinality_error"] = self.cardinality_error(logits, targets)
        return {"loss": total, **losses}

    def layer_losses(self, out: dict, targets: list[dict], indices: list[tuple], num_boxes: Tensor) -> dict:
        """``loss_ce``, ``loss_bbox``, ``loss_giou`` of one decoder layer, in float32."""
        logits = out["pred_logits"].float()  # (B, Q, K+1)
        batch_idx, pred_idx = _flat_indices(indices, logits.device)
        target_classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.long, device=logits.device)
        matched = [t["labels"][j] for t, (_, j) in zip(targets, indices, strict=True)]
        target_classes[batch_idx, pred_idx] = torch.cat(matched).to(logits.device)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            loss_ce = F.cross_entropy(logits.transpose(1, 2), target_classes, self.class_weight)  # over (B, Q)
            src = out["pred_boxes"].float()[batch_idx, pred_idx]  # (M, 4)
            tgt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices, strict=True)]).to(src)  # (M, 4)
            loss_bbox = F.l1_loss(src, tgt, reduction="sum") / num_boxes
            giou = box_ops.generalized_box_iou_pairs(box_ops.cxcywh_to_xyxy(src), box_ops.cxcywh_to_xyxy(tgt))
            loss_giou = (1 - giou).sum() / num_boxes
        return {"loss_ce": loss_ce, "loss_bbox": loss_bbox, "loss_giou": loss_giou}

    @staticmethod
    def num_boxes(targets: list[dict[str, Tensor]], device: torch.device) -> Tensor:
        """Target boxes per process, averaged over all processes when distributed, at least 1 (a tensor on
        ``device``: dividing by it needs no wait for the device)."""
        n = torch.tensor(float(sum(len(t["labels"]) for t in targets)), device=device)
        world = 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(n)
            world = torch.distributed.get_world_size()
        return (n / world).clamp(min=1.0)

    @torch.no_grad()
    def cardinality_error(self, logits: Tensor, targets: list[dict[str, Tensor]]) -> Tensor:
        predicted = (logits.argmax(-1) != logits.shape[-1] - 1).sum(1).float()  # (B,)
        expected = torch.tensor([float(len(t["labels"])) for t in targets], device=logits.device)
        return F.l1_loss(predicted, expected)


def _flat_indices(indices: list[tuple[Tensor, Tensor]], device: torch.device) -> tuple[Tensor, Tensor]:
    batch = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
    src = torch.cat([src for src, _ in indices])
    return batch.to(device), src.to(device)
