"""A DETR task whose evaluation predictions are the batch's own targets, perturbed: non-zero, known-ish AP through
the real evaluation path (post-processing, box scaling to the original image, category ids, COCO evaluation, the
gather across processes), without training a detector first.

Each image's perturbation is drawn from its image id, so one process and two give the same predictions. The model
still runs and the outputs stay attached to it (``real + (oracle - real).detach()``), so training steps work too.
"""

from __future__ import annotations

import torch

from vitkit.tasks import DetectionTask

NOISE = 0.05  # box jitter, as a fraction of the box's size
WRONG_CLASS = 0.2  # share of objects predicted with another class


class OracleDetectionTask(DetectionTask):
    def validation_step(self, batch, batch_idx):
        self._targets = batch["targets"]
        return super().validation_step(batch, batch_idx)

    def test_step(self, batch, batch_idx):
        self._targets = batch["targets"]
        return super().test_step(batch, batch_idx)

    def forward(self, images, pixel_mask=None):
        out = self.model(images, pixel_mask)
        targets = getattr(self, "_targets", None)
        if targets is None or self.training:
            return out
        logits, boxes = oracle_outputs(targets, *out["pred_logits"].shape)
        logits, boxes = logits.to(out["pred_logits"]), boxes.to(out["pred_boxes"])
        out["pred_logits"] = out["pred_logits"] + (logits - out["pred_logits"]).detach()
        out["pred_boxes"] = out["pred_boxes"] + (boxes - out["pred_boxes"]).detach()
        return out


def oracle_outputs(targets: list[dict], batch: int, queries: int, classes_plus_one: int) -> tuple:
    """``pred_logits (B, Q, K+1)`` and ``pred_boxes (B, Q, 4)``: the first n queries of an image predict its n targets
    (jittered boxes, sometimes the wrong class, a score in [0.6, 1)); one more query a false positive at 0.3; the rest
    no-object."""
    K = classes_plus_one - 1
    logits = torch.full((batch, queries, classes_plus_one), -8.0)
    logits[..., K] = 8.0  # no-object
    boxes = torch.full((batch, queries, 4), 0.5)
    for i, t in enumerate(targets):
        g = torch.Generator().manual_seed(int(t["image_id"]))
        n = min(len(t["labels"]), queries)
        jitter = 1 + NOISE * torch.randn(n, 4, generator=g)  # (n, 4)
        tb = t["boxes"][:n].float()
        boxes[i, :n, :2] = (tb[:, :2] + NOISE * tb[:, 2:] * torch.randn(n, 2, generator=g)).clamp(0, 1)
        boxes[i, :n, 2:] = (tb[:, 2:] * jitter[:, 2:]).clamp(1e-3, 1)
        labels = t["labels"][:n].clone()
        wrong = torch.rand(n, generator=g) < WRONG_CLASS
        labels[wrong] = (labels[wrong] + 1) % K
        score = 0.6 + 0.4 * torch.rand(n, generator=g)
        logits[i, torch.arange(n), labels] = torch.logit(score) + 8.0  # softmax ≈ score against no-object
        logits[i, torch.arange(n), K] = 8.0
        if n < queries:  # one false positive
            boxes[i, n] = torch.rand(4, generator=g) * 0.3 + 0.2
            logits[i, n, int(torch.randint(K, (1,), generator=g))] = torch.logit(torch.tensor(0.3)) + 8.0
    return logits, boxes
