"""Box conversions, IoU and GIoU against values computed by hand."""

import itertools

import pytest
import torch

from vitkit import boxes as B


def test_conversions_hand_values():
    cxcywh = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    torch.testing.assert_close(B.cxcywh_to_xyxy(cxcywh), torch.tensor([[0.4, 0.3, 0.6, 0.7]]))
    xywh = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    torch.testing.assert_close(B.convert(xywh, "xywh", "xyxy"), torch.tensor([[10.0, 20.0, 40.0, 60.0]]))
    torch.testing.assert_close(B.convert(xywh, "xywh", "cxcywh"), torch.tensor([[25.0, 40.0, 30.0, 40.0]]))
    torch.testing.assert_close(B.convert(torch.tensor([1.0, 2.0, 4.0, 8.0]), "xyxy", "xywh"),
                               torch.tensor([1.0, 2.0, 3.0, 6.0]))


def test_conversions_round_trip_every_pair():
    xyxy = torch.tensor([[0.0, 0.0, 1.0, 1.0], [2.0, 3.0, 7.0, 4.5], [-1.0, 5.0, 0.5, 9.0]])
    for src, dst in itertools.permutations(B.FORMATS, 2):
        boxes = B.convert(xyxy, "xyxy", src)
        torch.testing.assert_close(B.convert(B.convert(boxes, src, dst), dst, src), boxes)
    batched = xyxy.expand(2, 3, 4)  # any leading dimensions
    assert B.convert(batched, "xyxy", "cxcywh").shape == (2, 3, 4)


def test_convert_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown box format 'yxyx'"):
        B.convert(torch.zeros(1, 4), "yxyx", "xyxy")
    with pytest.raises(ValueError, match="4 coordinates"):
        B.convert(torch.zeros(1, 5), "xyxy", "xywh")


def test_area_iou_giou_hand_values():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    torch.testing.assert_close(B.area(b), torch.tensor([4.0, 1.0, 4.0]))
    # overlap 1, union 7, hull 3×3 = 9; touching box: no overlap, union 5, hull 3×2 = 6; identical boxes.
    torch.testing.assert_close(B.box_iou(a, b), torch.tensor([[1 / 7, 0.0, 1.0]]))
    torch.testing.assert_close(B.generalized_box_iou(a, b), torch.tensor([[1 / 7 - 2 / 9, 0.0 - 1 / 6, 1.0]]))
    far = torch.tensor([[10.0, 0.0, 12.0, 2.0]])  # union 8, hull 12×2 = 24: GIoU = -(24 - 8) / 24
    torch.testing.assert_close(B.generalized_box_iou(a, far), torch.tensor([[-2 / 3]]))


def test_giou_pairs_is_the_diagonal_and_bounded():
    g = torch.Generator().manual_seed(0)
    a = B.cxcywh_to_xyxy(torch.rand(6, 4, generator=g))
    b = B.cxcywh_to_xyxy(torch.rand(6, 4, generator=g))
    full = B.generalized_box_iou(a, b)
    torch.testing.assert_close(B.generalized_box_iou_pairs(a, b), full.diagonal())
    assert full.min() >= -1 and full.max() <= 1


def test_a_degenerate_prediction_against_a_real_box_is_finite():
    """Predictions whose width underflows to 0 (low precision) are matched against targets, which always have an
    area (the data drops empty boxes): IoU and GIoU stay finite."""
    point = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    target = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    assert B.box_iou(point, target).item() == 0.0
    assert torch.isfinite(B.generalized_box_iou(point, target)).all()
    assert torch.isfinite(B.generalized_box_iou_pairs(point, target)).all()


def test_pixel_boxes_clip_and_normalise():
    boxes = torch.tensor([[-2.0, 1.0, 6.0, 4.0], [8.0, 8.0, 5.0, 5.0]])  # partly outside a 10×10 image
    torch.testing.assert_close(B.clip_xywh(boxes, 10, 10), torch.tensor([[0.0, 1.0, 4.0, 4.0], [8.0, 8.0, 2.0, 2.0]]))
    torch.testing.assert_close(B.normalise(torch.tensor([[2.0, 4.0, 4.0, 2.0]]), 8, 16),
                               torch.tensor([[0.25, 0.625, 0.25, 0.25]]))
    back = B.denormalise(torch.tensor([[[0.25, 0.625, 0.25, 0.25]]]), torch.tensor([[8.0, 16.0]]), "xywh")
    torch.testing.assert_close(back, torch.tensor([[[2.0, 4.0, 4.0, 2.0]]]))
