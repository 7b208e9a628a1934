"""Loading a converted state dict into a model, checking every key and shape, and reporting what happened."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn

from vitkit.weights.io import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    source: str
    loaded: list[str] = field(default_factory=list)
    reinitialized: list[str] = field(default_factory=list)  # head keys kept at their fresh initialisation
    skipped: list[str] = field(default_factory=list)  # checkpoint keys the model has no use for (e.g. old head)
    notes: list[str] = field(default_factory=list)  # conversions applied: resampling, channel folding, ...

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors from {self.source}"]
        if self.reinitialized:
            lines.append(f"re-initialised (new shape or absent): {', '.join(self.reinitialized)}")
        if self.skipped:
            lines.append(f"skipped (not used by this model): {', '.join(self.skipped)}")
        lines += self.notes
        return "\n".join(lines)


def load_checkpoint(model: nn.Module, path: str | Path) -> LoadReport:
    """Read ``path``, convert it with ``model.convert_checkpoint`` when the family has one, and load it."""
    ckpt = read_checkpoint(path)
    state_dict, notes = ckpt.state_dict, []
    if hasattr(model, "convert_checkpoint"):
        state_dict, notes = model.convert_checkpoint(state_dict)
    report = load_state_dict(model, state_dict, source=str(path))
    report.notes = notes + report.notes
    log.info("%s", report)
    return report


def load_state_dict(model: nn.Module, state_dict: dict[str, Tensor], *, source: str = "state dict") -> LoadReport:
    """Load ``state_dict`` into ``model``; only keys under ``model.reinit_prefixes`` (default ``head.``) may differ.

    Those keys are left at their initialisation (a new head for a new number of classes). Any other missing,
    unexpected or differently-shaped key raises ``CheckpointError`` naming the keys and shapes.
    """
    own = model.state_dict()
    reinit_prefixes = tuple(getattr(model, "reinit_prefixes", ("head.",)))
    missing, unexpected, wrong = key_differences(own, state_dict)
    report = LoadReport(source)
    report.skipped = [k for k in unexpected if k.startswith(reinit_prefixes)]
    report.reinitialized = [k for k in wrong + missing if k.startswith(reinit_prefixes)]
    missing, unexpected, wrong = ([k for k in keys if not k.startswith(reinit_prefixes)]
                                  for keys in (missing, unexpected, wrong))
    if wrong or missing or unexpected:
        wrong_shape = [shape_difference(k, state_dict, own) for k in wrong]
        raise CheckpointError(_mismatch_message(model, source, wrong_shape, missing, unexpected))
    to_load = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    return report


def key_differences(own: dict[str, Tensor], theirs: dict[str, Tensor]) -> tuple[list[str], list[str], list[str]]:
    """``(missing, unexpected, wrong_shape)``: keys of ``own`` absent from ``theirs``, keys of ``theirs`` absent from
    ``own``, and shared keys whose shapes differ (in ``theirs``'s order)."""
    missing = [k for k in own if k not in theirs]
    unexpected = [k for k in theirs if k not in own]
    wrong = [k for k, v in theirs.items() if k in own and own[k].shape != v.shape]
    return missing, unexpected, wrong


def shape_difference(key: str, theirs: dict[str, Tensor], own: dict[str, Tensor]) -> str:
    return f"{key}: checkpoint {tuple(theirs[key].shape)} vs model {tuple(own[key].shape)}"


def _mismatch_message(model: nn.Module, source: str, wrong: list[str], missing: list[str], extra: list[str]) -> str:
    def some(items: list[str]) -> str:
        return "; ".join(items[:6]) + (f"; … and {len(items) - 6} more" if len(items) > 6 else "")

    parts = [f"checkpoint {source} does not fit {type(model).__name__}"]
    if wrong:
        parts.append(f"{len(wrong)} tensors differ in shape: {some(wrong)}")
    if missing:
        parts.append(f"{len(missing)} model tensors are missing from it: {some(missing)}")
    if extra:
        parts.append(f"{len(extra)} of its tensors have no place in the model: {some(extra)}")
    parts.append("Is it from another variant? Use the preset it was trained as, or override the differing config "
                 "fields (e.g. depth, dim, patch_size).")
    return "\n  ".join(parts)
