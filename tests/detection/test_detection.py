"""Hungarian matcher, set criterion and post-processing (vitkit.detection)."""

import itertools

import pytest
import torch

from vitkit import boxes as B
from vitkit.detection import HungarianMatcher, SetCriterion, postprocess, to_coco_results


def random_case(seed: int, batch: int, queries: int, classes: int, sizes: list[int]):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, queries, classes + 1, generator=g)
    boxes = torch.cat([torch.rand(batch, queries, 2, generator=g) * 0.6 + 0.2,
                       torch.rand(batch, queries, 2, generator=g) * 0.3 + 0.05], -1)
    targets = [{"labels": torch.randint(0, classes, (n,), generator=g),
                "boxes": torch.cat([torch.rand(n, 2, generator=g) * 0.6 + 0.2,
                                    torch.rand(n, 2, generator=g) * 0.3 + 0.05], -1)} for n in sizes]
    return logits, boxes, targets


def reference_cost(logits, boxes, target, w=(1.0, 5.0, 2.0)):
    """Cost (Q, n) written out entry by entry, independently of the matcher's vectorised code."""
    prob = logits.softmax(-1)
    Q, n = boxes.shape[0], len(target["labels"])
    cost = torch.empty(Q, n)
    for i in range(Q):
        for j in range(n):
            l1 = (boxes[i] - target["boxes"][j]).abs().sum()
            giou = B.generalized_box_iou(B.cxcywh_to_xyxy(boxes[i:i + 1]), B.cxcywh_to_xyxy(target["boxes"][j:j + 1]))
            cost[i, j] = -w[0] * prob[i, target["labels"][j]] + w[1] * l1 - w[2] * giou[0, 0]
    return cost


@pytest.mark.parametrize("seed,queries,n", [(0, 4, 2), (1, 5, 5), (2, 5, 3), (3, 3, 1)])
def test_matcher_equals_brute_force(seed, queries, n):
    logits, boxes, targets = random_case(seed, 1, queries, 3, [n])
    rows, cols = HungarianMatcher()(logits, boxes, targets)[0]
    cost = reference_cost(logits[0], boxes[0], targets[0])
    best = min(sum(cost[p[j], j] for j in range(n)) for p in itertools.permutations(range(queries), n))
    assert len(rows) == n and sorted(cols.tolist()) == list(range(n))
    assert torch.isclose(cost[rows, cols].sum(), torch.as_tensor(best), atol=1e-5)


def test_matcher_batched_equals_per_image():
    logits, boxes, targets = random_case(4, 4, 10, 5, [3, 0, 7, 1])
    matcher = HungarianMatcher()
    batched = matcher(logits, boxes, targets)
    for i, t in enumerate(targets):
        single = matcher(logits[i:i + 1], boxes[i:i + 1], [t])[0]
        assert torch.equal(batched[i][0], single[0]) and torch.equal(batched[i][1], single[1])
    assert len(batched[1][0]) == 0


def test_matcher_is_fp32_under_autocast_and_rejects_bad_input():
    logits, boxes, targets = random_case(5, 2, 6, 3, [2, 2])
    matcher = HungarianMatcher()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cost = matcher.cost_matrix(logits.bfloat16(), boxes.bfloat16(), targets)
    assert cost.dtype == torch.float32
    with pytest.raises(FloatingPointError, match="non-finite"):
        matcher(logits * float("nan"), boxes, targets)
    targets[1]["labels"][0] = 3  # == num_classes: the no-object index
    with pytest.raises(ValueError, match=r"target labels must lie in 0\.\.2"):
        matcher(logits, boxes, targets)
    with pytest.raises(ValueError, match="2 target dicts for a batch of 1"):
        matcher(logits[:1], boxes[:1], targets)


def test_criterion_hand_value():
    # One image, two queries; query 0 predicts the target box exactly, so only the classification loss remains.
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.05, 0.05]]])
    targets = [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}]
    losses = SetCriterion(2)({"pred_logits": logits, "pred_boxes": boxes}, targets)
    nll = -torch.log_softmax(logits[0], -1)
    expected_ce = (1.0 * nll[0, 0] + 0.1 * nll[1, 2]) / (1.0 + 0.1)  # no-object weight 0.1
    torch.testing.assert_close(losses["loss_ce"], expected_ce)
    assert losses["loss_bbox"].item() == 0.0 and abs(losses["loss_giou"].item()) < 1e-6
    torch.testing.assert_close(losses["loss"], expected_ce)
    assert losses["cardinality_error"].item() == 0.0  # query 0 says "class 0", query 1 says "no object"


def test_criterion_equals_hugging_face_loss():
    from transformers import DetrConfig
    from transformers.loss.loss_for_object_detection import ForObjectDetectionLoss

    layers, classes = 3, 4
    logits, boxes, targets = random_case(6, 3, 7, classes, [2, 0, 5])
    aux_logits = torch.randn(layers - 1, 3, 7, classes + 1)
    aux_boxes = torch.rand(layers - 1, 3, 7, 4) * 0.3 + 0.2
    outputs = {"pred_logits": logits, "pred_boxes": boxes,
               "aux_outputs": [{"pred_logits": a, "pred_boxes": b} for a, b in zip(aux_logits, aux_boxes, strict=True)]}
    ours = SetCriterion(classes)(outputs, targets)
    config = DetrConfig(num_labels=classes, auxiliary_loss=True, decoder_layers=layers)
    labels = [{"class_labels": t["labels"], "boxes": t["boxes"]} for t in targets]
    hf_loss, hf_dict, _ = ForObjectDetectionLoss(
        logits, labels, "cpu", boxes, config,
        torch.cat([aux_logits, logits[None]]), torch.cat([aux_boxes, boxes[None]]),
    )
    torch.testing.assert_close(ours["loss"], hf_loss)
    for name in ("loss_ce", "loss_bbox", "loss_giou", "loss_ce_1", "loss_giou_0"):
        torch.testing.assert_close(ours[name], hf_dict[name])


def test_criterion_finite_under_autocast_with_huge_boxes():
    logits, boxes, targets = random_case(7, 2, 6, 3, [3, 1])
    # Pixel-sized boxes: their areas (~1e9) overflow float16 (max 65504), and bf16 rounds them coarsely.
    huge = (boxes * 4e4).half().requires_grad_()
    targets = [{"labels": t["labels"], "boxes": t["boxes"] * 4e4} for t in targets]
    criterion = SetCriterion(3)
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cpu", dtype=dtype):
            losses = criterion({"pred_logits": logits.to(dtype).requires_grad_(), "pred_boxes": huge}, targets)
        assert all(torch.isfinite(v).all() for v in losses.values()), losses
        assert losses["loss"].dtype == torch.float32
    losses["loss"].backward()
    assert torch.isfinite(huge.grad.float()).all()


def test_criterion_without_targets_and_distributed_normalisation(monkeypatch):
    logits, boxes, _ = random_case(8, 2, 4, 2, [0, 0])
    empty = [{"labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)}] * 2
    losses = SetCriterion(2)({"pred_logits": logits, "pred_boxes": boxes}, empty)
    assert torch.isfinite(losses["loss"]) and losses["loss_bbox"].item() == 0.0
    assert SetCriterion.num_boxes(empty, torch.device("cpu")) == 1.0  # clamped, never a division by zero
    # Two processes: this one holds 4 boxes, the other 6 → each divides by the mean, 5.
    dist = torch.distributed
    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_reduce", lambda t: t.add_(6.0))
    four = [{"labels": torch.zeros(4, dtype=torch.long), "boxes": torch.rand(4, 4)}]
    assert SetCriterion.num_boxes(four, torch.device("cpu")) == 5.0


def test_criterion_rejects_wrong_class_count():
    logits, boxes, targets = random_case(9, 1, 4, 3, [1])
    with pytest.raises(ValueError, match="expected num_classes \\+ 1 = 6"):
        SetCriterion(5)({"pred_logits": logits, "pred_boxes": boxes}, targets)


def test_postprocess_maps_to_original_sizes_and_category_ids():
    logits = torch.full((2, 3, 4), -10.0)
    logits[0, 0, 2] = 5.0  # query 0 of image 0: label 2, confident
    logits[0, 1, 0] = 1.0  # query 1: label 0, less confident
    logits[1, :, 3] = 10.0  # image 1: everything is no-object
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4]]).expand(2, 3, 4)
    outputs = {"pred_logits": logits, "pred_boxes": boxes}
    sizes = [(100, 200), (50, 50)]  # (height, width)
    res = postprocess(outputs, sizes, label_to_category=[1, 3, 7], threshold=0.3)
    assert res[0]["labels"].tolist() == [7, 1] and res[0]["scores"][0] > res[0]["scores"][1]
    assert res[0]["queries"].tolist() == [0, 1]  # which object query produced each detection
    torch.testing.assert_close(res[0]["boxes"][0], torch.tensor([80.0, 30.0, 120.0, 70.0]))
    assert len(res[1]["scores"]) == 0
    xywh = postprocess(outputs, torch.tensor(sizes), box_format="xywh", label_to_category=[1, 3, 7])
    torch.testing.assert_close(xywh[0]["boxes"][0], torch.tensor([80.0, 30.0, 40.0, 40.0]))
    entries = to_coco_results(xywh, [42, 43])
    assert entries[0]["image_id"] == 42 and entries[0]["category_id"] == 7
    assert entries[0]["bbox"] == pytest.approx([80.0, 30.0, 40.0, 40.0])
    assert len(entries) == 6
    with pytest.raises(ValueError, match="label_to_category has 2 entries but the model has 3 classes"):
        postprocess(outputs, sizes, label_to_category=[1, 3])
