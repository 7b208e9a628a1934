"""DETR's set prediction machinery: Hungarian matching, the set criterion, and post-processing to image boxes; RT-DETR's
focal-cost matcher, varifocal criterion and denoising queries.

Targets everywhere are a list with one dict per image: ``{"labels": (n,) long in 0..K-1, "boxes": (n, 4) float
normalised cxcywh}`` (``n`` may be 0).
"""

from vitkit.detection.criterion import SetCriterion
from vitkit.detection.denoising import DenoisingGroup, make_denoising_group
from vitkit.detection.matcher import HungarianMatcher
from vitkit.detection.postprocess import postprocess, to_coco_results
from vitkit.detection.rtdetr_criterion import FocalCostMatcher, RTDETRCriterion

__all__ = ["DenoisingGroup", "FocalCostMatcher", "HungarianMatcher", "RTDETRCriterion", "SetCriterion",
           "make_denoising_group", "postprocess", "to_coco_results"]
