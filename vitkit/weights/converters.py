"""Which converter reads a checkpoint for which model: one table from model class to converter module.

A converter module (``weights.vit``, ``weights.cvt``, ``weights.detr``, ...) holds the foreign layouts one family
understands: ``convert(state_dict, model) -> (state_dict, notes)`` detects the layout from the keys and renames,
stacks and resamples it into the model's names (checking what it can), and ``HEAD_PREFIXES`` names the keys a new
class count re-initialises. A model without an entry (a timm classifier, another ``nn.Module``) is loaded as it is,
with its classifier (timm's ``pretrained_cfg["classifier"]``, else ``head``) as the head.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from torch import Tensor, nn

from vitkit.models import DETR, RTDETR, CvT, ImageTransformer, VisionTransformer
from vitkit.weights import cvt, detr, image_transformer, rtdetr, vit
from vitkit.weights.io import read_checkpoint
from vitkit.weights.loading import LoadReport, load_state_dict

log = logging.getLogger(__name__)

StateDict = dict[str, Tensor]

_TABLE: dict[type[nn.Module], ModuleType] = {
    VisionTransformer: vit, CvT: cvt, ImageTransformer: image_transformer, DETR: detr, RTDETR: rtdetr,
}


@dataclass(frozen=True)
class Converter:
    convert: Callable[[StateDict, nn.Module], tuple[StateDict, list[str]]]
    head_prefixes: tuple[str, ...]


def register_converter(model_cls: type[nn.Module], module: ModuleType) -> None:
    """Let ``module`` (with ``convert`` and ``HEAD_PREFIXES``) read checkpoints for ``model_cls``."""
    _TABLE[model_cls] = module


def converter_for(model: nn.Module) -> Converter:
    for cls in type(model).__mro__:
        if cls in _TABLE:
            return Converter(_TABLE[cls].convert, tuple(_TABLE[cls].HEAD_PREFIXES))
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier", "head")
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return Converter(lambda sd, m: (dict(sd), []), tuple(f"{c}." for c in names))


def load_checkpoint(model: nn.Module, path: str | Path, *, source: str | None = None) -> LoadReport:
    """Read ``path`` (nothing in it is executed), convert it with the family's converter and load it into
    ``model``; returns the load report (also logged)."""
    converter = converter_for(model)
    state_dict, notes = converter.convert(read_checkpoint(path).state_dict, model)
    report = load_state_dict(model, state_dict, source=source or str(path), head_prefixes=converter.head_prefixes)
    report.notes = notes + report.notes
    log.info("%s", report)
    return report
