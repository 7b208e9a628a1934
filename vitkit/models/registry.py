"""Presets as data: a name maps to a model class and its frozen config.

Each family module (``vit``, ``cvt``, ``image_transformer``, ``detr``, ``rtdetr``) holds its ``PRESETS`` (name →
config) and ``DESCRIPTIONS``; this module gathers them, so the families never import the registry. ``build_model``
builds a preset with config fields overridden and fresh weights; loading weights is ``vitkit.build.create_model``'s
job, which sits above this module and ``vitkit.weights``.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from dataclasses import dataclass
from typing import Any

from torch import nn

from vitkit.errors import ConfigError, UnknownModelError
from vitkit.models import cvt, detr, image_transformer, rtdetr, vit

_FAMILIES = (vit, cvt, image_transformer, detr, rtdetr)  # each: MODEL, PRESETS, DESCRIPTIONS[, INPUT_SHAPE]


@dataclass(frozen=True)
class Preset:
    name: str
    model_cls: type[nn.Module]
    config: Any  # the family's frozen config dataclass
    description: str = ""
    family_input_shape: tuple[int, ...] | None = None  # for families whose config has no image size (detectors)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """``(C, H, W)`` of one input at the preset's design size (for FLOP counts), or None when unknown."""
        size = getattr(self.config, "img_size", None)
        if size is None:
            return self.family_input_shape
        return (getattr(self.config, "in_chans", 3), size, size)


def _collect() -> dict[str, Preset]:
    presets: dict[str, Preset] = {}
    for family in _FAMILIES:
        for name, config in family.PRESETS.items():
            if name in presets:
                raise ValueError(f"preset {name!r} is defined twice")
            presets[name] = Preset(name, family.MODEL, config, family.DESCRIPTIONS.get(name, ""),
                                   getattr(family, "INPUT_SHAPE", None))
    return presets


_PRESETS: dict[str, Preset] = _collect()


def list_models(pattern: str = "*") -> list[str]:
    """Preset names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _PRESETS if fnmatch.fnmatch(n, pattern))


def is_model(name: str) -> bool:
    return name in _PRESETS


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name raises ``UnknownModelError`` with near names."""
    if name not in _PRESETS:
        near = difflib.get_close_matches(name, list(_PRESETS), n=4, cutoff=0.5)
        hint = f"did you mean {', '.join(near)}? " if near else ""
        raise UnknownModelError(f"unknown model {name!r}",
                                f"{hint}`vitkit models` lists all {len(_PRESETS)} presets")
    return _PRESETS[name]


def preset_for(model_cls: type[nn.Module], config: Any) -> str | None:
    """The name of the preset whose class and config are exactly these, if any."""
    return next((p.name for p in _PRESETS.values() if p.model_cls is model_cls and p.config == config), None)


def build_config(name: str, **overrides: Any) -> Any:
    """The preset's config with ``overrides`` applied; unknown fields raise with the list of valid ones."""
    return override_config(name, get_preset(name).config, overrides)


def override_config(name: str, config: Any, overrides: dict[str, Any]) -> Any:
    """``config`` with ``overrides`` applied; a field it does not have, or a value it refuses, is a ``ConfigError``."""
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"{name}: unknown config field(s) {unknown}", f"use one of {sorted(fields)}")
    try:
        return dataclasses.replace(config, **overrides)
    except (ValueError, TypeError) as e:  # a family config's own check (__post_init__)
        raise ConfigError(f"{name}: {e}", "change the config value (model_kwargs) named above") from e


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Preset ``name`` with config ``overrides``, freshly initialised."""
    preset = get_preset(name)
    config = override_config(name, preset.config, overrides)
    try:
        return preset.model_cls(config)
    except ValueError as e:  # a combination of fields the layers refuse (a backbone timm does not have, ...)
        raise ConfigError(f"{name}: {e}", "change the config values (model_kwargs) named above") from e
