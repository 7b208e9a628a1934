"""Hungarian matching of predictions to targets (Carion et al. 2020, §3.1, eq. 1).

For each image the optimal one-to-one assignment ``σ̂ = argmin_σ Σ_i L_match(y_i, ŷ_σ(i))`` is found with the
Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) on the cost

    C = w_class · (−p̂(c_i)) + w_L1 · ‖b_i − b̂‖₁ + w_giou · (−GIoU(b_i, b̂))

(weights 1 / 5 / 2 in the paper). The cost is always computed in float32 with autocast disabled: in fp16 the
box areas of wild early predictions overflow and the cost becomes NaN, which the assignment cannot handle. The
assignment runs on the host, so the cost matrix is copied there once per batch; that is the matcher's one wait for
the device, and the checks of the costs and labels run on the host copies.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vitkit import boxes as box_ops


class HungarianMatcher(nn.Module):
    """Optimal assignment of the ``Q`` predictions of each image to its ``n`` targets (``n ≤ Q`` are matched).

    Args:
        cost_class: weight of the negative class probability.
        cost_bbox: weight of the L1 distance between normalised cxcywh boxes.
        cost_giou: weight of the negative generalised IoU.
    """

    def __init__(self, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0) -> None:
        super().__init__()
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("all matcher costs are 0; at least one of cost_class, cost_bbox, cost_giou must be > 0")
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou

    @torch.no_grad()
    def forward(self, pred_logits: Tensor, pred_boxes: Tensor, targets: list[dict[str, Tensor]]) -> list[tuple]:
        """Match ``pred_logits`` ``(B, Q, K+1)`` and ``pred_boxes`` ``(B, Q, 4)`` (cxcywh) to ``targets``.

        Returns one ``(pred_idx, target_idx)`` pair of long tensors (on CPU) per image, each of length
        ``min(Q, n)``, sorted by ``pred_idx``.
        """
        if len(targets) != pred_logits.shape[0]:
            raise ValueError(f"{len(targets)} target dicts for a batch of {pred_logits.shape[0]} images")
        sizes = [len(t["boxes"]) for t in targets]
        if sum(sizes) == 0:
            empty = torch.empty(0, dtype=torch.long)
            return [(empty, empty) for _ in targets]
        cost = self.cost_matrix(pred_logits, pred_boxes, targets).cpu()  # (B, Q, T): the one copy to the host
        _check_labels(torch.cat([t["labels"] for t in targets]).cpu(), pred_logits.shape[-1] - 1)
        if not torch.isfinite(cost).all():
            raise FloatingPointError(
                "the matching cost has NaN/inf entries: the model produced non-finite logits or boxes "
                "(diverged training: lower the learning rate or check the inputs), or a target box is not finite"
            )
        return [_assign(c[i]) for i, c in enumerate(cost.split(sizes, dim=-1))]

    def cost_matrix(self, pred_logits: Tensor, pred_boxes: Tensor, targets: list[dict[str, Tensor]]) -> Tensor:
        """Costs ``(B, Q, T)`` between every prediction and every target of the batch (T = all targets), fp32."""
        device = pred_logits.device
        with torch.autocast(device_type=device.type, enabled=False):
            prob = pred_logits.float().softmax(-1)  # (B, Q, K+1)
            out_boxes = pred_boxes.float()  # (B, Q, 4)
            labels = torch.cat([t["labels"] for t in targets]).to(device)  # (T,)
            tgt_boxes = torch.cat([t["boxes"] for t in targets]).to(device=device, dtype=torch.float32)  # (T, 4)
            B, Q, K = prob.shape[0], prob.shape[1], prob.shape[2] - 1
            cost = -self.cost_class * prob[..., labels.clamp(0, K - 1)]  # (B, Q, T); labels checked on the host
            cost = cost + self.cost_bbox * torch.cdist(out_boxes.flatten(0, 1), tgt_boxes, p=1).view(B, Q, -1)
            giou = box_ops.generalized_box_iou(box_ops.cxcywh_to_xyxy(out_boxes.flatten(0, 1)),
                                               box_ops.cxcywh_to_xyxy(tgt_boxes))  # (B·Q, T)
            cost = cost - self.cost_giou * giou.view(B, Q, -1)
        return cost


def _check_labels(labels: Tensor, num_classes: int) -> None:
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"target labels must lie in 0..{num_classes - 1} (the model's num_classes={num_classes}; "
                         f"index {num_classes} is no-object), got labels from {int(labels.min())} to "
                         f"{int(labels.max())}; map dataset category ids to contiguous labels first")


def _assign(cost: Tensor) -> tuple[Tensor, Tensor]:
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost.numpy())
    return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)
