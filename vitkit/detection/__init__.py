"""DETR's set prediction machinery: Hungarian matching, the set criterion, and post-processing to image boxes.

Targets everywhere are a list with one dict per image: ``{"labels": (n,) long in 0..K-1, "boxes": (n, 4) float
normalised cxcywh}`` (``n`` may be 0).
"""

from vitkit.detection.criterion import SetCriterion
from vitkit.detection.matcher import HungarianMatcher
from vitkit.detection.postprocess import postprocess, to_coco_results

__all__ = ["HungarianMatcher", "SetCriterion", "postprocess", "to_coco_results"]
