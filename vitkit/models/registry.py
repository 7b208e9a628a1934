"""Presets as data: a name maps to a model class and its frozen config.

``create_model(name, checkpoint=..., **overrides)`` builds the preset with fields overridden and loads weights in
any layout the family understands. Each family registers its presets with ``register_presets`` at import.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from vitkit.errors import UnknownModelError


@dataclass(frozen=True)
class Preset:
    name: str
    model_cls: type[nn.Module]
    config: Any  # the family's frozen config dataclass
    description: str = ""


_PRESETS: dict[str, Preset] = {}


def register_presets(model_cls: type[nn.Module], presets: dict[str, Any], descriptions: dict[str, str] | None = None):
    """Register ``{name: config}`` for ``model_cls`` (whose constructor takes the config)."""
    for name, config in presets.items():
        if name in _PRESETS:
            raise ValueError(f"preset {name!r} is registered twice")
        _PRESETS[name] = Preset(name, model_cls, config, (descriptions or {}).get(name, ""))


def list_models(pattern: str = "*") -> list[str]:
    """Registered preset names matching a shell-style ``pattern``, sorted."""
    _ensure_families_loaded()
    return sorted(n for n in _PRESETS if fnmatch.fnmatch(n, pattern))


def is_model(name: str) -> bool:
    _ensure_families_loaded()
    return name in _PRESETS


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name raises ``UnknownModelError`` (a ``KeyError``) with near names."""
    _ensure_families_loaded()
    if name not in _PRESETS:
        near = difflib.get_close_matches(name, list(_PRESETS), n=4, cutoff=0.5)
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        raise UnknownModelError(f"unknown model {name!r}.{hint} `vitkit models` lists all {len(_PRESETS)} presets.")
    return _PRESETS[name]


def build_config(name: str, **overrides: Any) -> Any:
    """The preset's config with ``overrides`` applied; unknown fields raise with the list of valid ones."""
    return _override(name, get_preset(name).config, overrides)


def _override(name: str, config: Any, overrides: dict[str, Any]) -> Any:
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"{name}: unknown config field(s) {unknown}; valid fields: {sorted(fields)}")
    return dataclasses.replace(config, **overrides)


def create_model(name: str | None = None, *, checkpoint: str | Path | None = None, **overrides: Any) -> nn.Module:
    """Build preset ``name`` with config ``overrides``; load ``checkpoint`` when given.

    The checkpoint may be in any layout the family converts (vitkit, Lightning ``.ckpt``, timm, Hugging Face,
    official releases) and format (``.pth``, ``.bin``, ``.ckpt``, ``.safetensors``); nothing in it is executed.
    Without ``name``, the checkpoint must describe its model (a ``.safetensors`` file written by ``vitkit export``):
    the model is built from the preset and config stored in it, with ``overrides`` applied on top.
    The load report (loaded / re-initialised / skipped keys) is logged and kept as ``model.load_report``.
    """
    if name is None:
        if checkpoint is None:
            raise TypeError("create_model needs a preset name, or a checkpoint that names its model (vitkit export)")
        from vitkit.weights.export import described_model

        name, config = described_model(checkpoint)
        model = get_preset(name).model_cls(_override(name, config, overrides))
    else:
        model = get_preset(name).model_cls(build_config(name, **overrides))
    if checkpoint is not None:
        from vitkit.weights import load_checkpoint

        model.load_report = load_checkpoint(model, checkpoint)
    return model


def _ensure_families_loaded() -> None:
    import vitkit.models  # noqa: F401  (importing the package registers every family)
