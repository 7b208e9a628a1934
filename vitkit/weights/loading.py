"""Loading a converted state dict into a model, checking every key and shape, and reporting what happened.

Only keys under the head prefixes (the class head: re-initialised for a new class count) may be missing or differ
in shape; anything else that does not fit raises a ``CheckpointError`` naming the keys. BatchNorm's
``num_batches_tracked`` counters are ignored wherever they are or are not: frozen BatchNorm has none, trainable
BatchNorm restarts its count. Reading and converting a file comes before this: ``weights.converters.load_checkpoint``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from torch import Tensor, nn

from vitkit.errors import CheckpointError

log = logging.getLogger(__name__)
COUNTER = "num_batches_tracked"


def without_counters(state_dict: dict[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """The entries of ``state_dict`` under ``prefix``, BatchNorm's step counters left out."""
    return {k: v for k, v in state_dict.items() if k.startswith(prefix) and not k.endswith(COUNTER)}


@dataclass
class LoadReport:
    source: str
    loaded: list[str] = field(default_factory=list)
    reinitialized: list[str] = field(default_factory=list)  # head keys kept at their fresh initialisation
    skipped: list[str] = field(default_factory=list)  # checkpoint keys the model has no use for (e.g. old head)
    notes: list[str] = field(default_factory=list)  # conversions applied: layout, resampling, channel folding, ...

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors from {self.source}"]
        if self.reinitialized:
            lines.append(f"re-initialised (new shape or absent): {', '.join(self.reinitialized)}")
        if self.skipped:
            lines.append(f"skipped (not used by this model): {', '.join(self.skipped)}")
        lines += self.notes
        return "\n".join(lines)


def load_state_dict(model: nn.Module, state_dict: dict[str, Tensor], *, source: str = "state dict",
                    head_prefixes: tuple[str, ...] = ("head.",)) -> LoadReport:
    """Load ``state_dict`` into ``model``; only keys under ``head_prefixes`` may be missing or differ in shape.

    Those keys are left at their initialisation (a new head for a new number of classes). Any other missing,
    unexpected or differently-shaped key raises ``CheckpointError`` naming the keys and shapes.
    """
    own, theirs = without_counters(model.state_dict()), without_counters(state_dict)
    missing, unexpected, wrong = key_differences(own, theirs)
    report = LoadReport(source)
    report.skipped = [k for k in unexpected if k.startswith(head_prefixes)]
    report.reinitialized = [k for k in wrong + missing if k.startswith(head_prefixes)]
    missing, unexpected, wrong = ([k for k in keys if not k.startswith(head_prefixes)]
                                  for keys in (missing, unexpected, wrong))
    if wrong or missing or unexpected:
        raise CheckpointError(*_mismatch(model, source, [shape_difference(k, theirs, own) for k in wrong], missing,
                                         unexpected))
    to_load = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
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


def some(items: list[str], n: int = 6) -> str:
    """The first ``n`` items joined, with a count of the rest."""
    return ", ".join(items[:n]) + (f" … and {len(items) - n} more" if len(items) > n else "")


def _mismatch(model: nn.Module, source: str, wrong: list[str], missing: list[str], extra: list[str]
              ) -> tuple[str, str]:
    parts = [f"checkpoint {source} does not fit {type(model).__name__}"]
    if wrong:
        parts.append(f"{len(wrong)} tensors differ in shape ({some(wrong)})")
    if missing:
        parts.append(f"{len(missing)} model tensors are missing from it ({some(missing)})")
    if extra:
        parts.append(f"{len(extra)} of its tensors have no place in the model ({some(extra)})")
    return "; ".join(parts), ("is it from another variant? Use the preset it was trained as, or override the "
                              "differing config fields (e.g. depth, dim, patch_size)")


def backbone_only(state_dict: dict[str, Tensor], model: nn.Module,
                  extras: tuple[str, ...] = ()) -> tuple[dict[str, Tensor], list[str]] | None:
    """A bare CNN checkpoint (ImageNet weights of the detector's timm backbone: ``conv1.weight``, ``layer1.0…``,
    ``fc.*``; no key under ``backbone.``, most of the backbone's names present unprefixed) as ``(state dict of the
    whole model, notes)``: the backbone filled from it, everything else kept as initialised. ``extras``: prefixes
    of backbone modules the detector adds to the timm network (kept as initialised when the checkpoint lacks
    them). ``None`` for any other checkpoint."""
    own = model.state_dict()
    names = [k.removeprefix("backbone.") for k in own if k.startswith("backbone.")]
    if any(k.startswith("backbone.") for k in state_dict) or sum(k in state_dict for k in names) <= len(names) / 2:
        return None
    sd = {f"backbone.{k}": v for k, v in state_dict.items() if f"backbone.{k}" in own}
    unused = [k for k in state_dict if f"backbone.{k}" not in own and not k.endswith(COUNTER)]
    added = [k for k in own if k.startswith(extras) and k not in sd] if extras else []
    sd.update({k: v for k, v in own.items() if not k.startswith("backbone.") or k in added})  # kept as initialised
    notes = [f"a bare {model.config.backbone} checkpoint: loaded into the backbone only; the Transformer, queries "
             f"and heads keep their fresh initialisation"]
    if added:
        notes.append(f"{len(added)} backbone tensors the checkpoint does not have kept as initialised: {added[:4]}")
    if unused:
        notes.append(f"{len(unused)} checkpoint tensors the backbone has no use for were skipped (classifier, later "
                     f"stages): {unused[:4]}")
    return sd, notes


def finish_detector(sd: dict[str, Tensor], unmatched: list[str], notes: list[str], model: nn.Module,
                    fix: str) -> tuple[dict[str, Tensor], list[str]]:
    """The end of a detector checkpoint's conversion: the checkpoint keys left without a counterpart noted
    (BatchNorm's counters aside), the backbone checked to be the model's (``check_backbone``, with ``fix``)."""
    unmatched = [k for k in unmatched if not k.endswith(COUNTER)]
    if unmatched:
        notes.append(f"{len(unmatched)} keys of the checkpoint have no vitkit counterpart: {unmatched[:5]}")
    check_backbone(sd, model, fix)
    return sd, notes


def check_backbone(state_dict: dict[str, Tensor], model: nn.Module, fix: str) -> None:
    """Raise ``CheckpointError`` naming the keys when the checkpoint's ``backbone.*`` tensors are not those of
    ``model``'s backbone (a detector's checkpoint of another variant); ``fix`` says which presets match which."""
    own, theirs = without_counters(model.state_dict(), "backbone."), without_counters(state_dict, "backbone.")
    missing, extra, wrong = key_differences(own, theirs)
    shapes = [shape_difference(k, theirs, own) for k in wrong]
    if not (missing or extra or shapes):
        return
    parts = [f"the checkpoint's backbone does not match this model's backbone {model.config.backbone!r}"]
    if missing:
        parts.append(f"{len(missing)} backbone tensors missing from the checkpoint, e.g. {missing[:4]}")
    if extra:
        parts.append(f"{len(extra)} checkpoint backbone tensors unknown to the model, e.g. {extra[:4]}")
    if shapes:
        parts.append(f"{len(shapes)} differ in shape, e.g. {shapes[:3]}")
    raise CheckpointError("; ".join(parts), fix)
