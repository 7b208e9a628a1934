"""vitkit's classifiers in timm's registry: ``timm.create_model("vitkit_<preset>")`` for every ViT and CvT preset.

``register_timm_models()`` (called once by ``vitkit/__init__.py``) generates one timm entry point per classifier
preset from the preset table — nothing is written out per model — and registers it with timm's public
``register_model``, together with the preset's ``pretrained_cfg``: input size, mean/std, crop fraction and
interpolation of the weights that ``PRETRAINED`` names for it (timm's AugReg ViT weights: 0.5/0.5, crop 0.9, bicubic;
Hugging Face's CvT: ImageNet statistics, crop 0.875, bicubic), or neutral values for presets without weights. So
``timm.data.resolve_model_data_config(model)`` gives the preprocessing the weights expect, and timm's own tools
(``benchmark.py``, ``validate.py``, ``train.py``) run vitkit models unmodified.

An entry point takes timm's keyword vocabulary (``num_classes``, ``in_chans``, ``img_size``, ``drop_rate``,
``drop_path_rate``, ``global_pool``, ...) as config overrides of the preset, and ``pretrained=True`` loads the weights
of vitkit's table (``vitkit.weights.hub``). It attaches ``pretrained_cfg`` to the model it returns, as timm's own
factory does for timm's models: that attribute is timm's protocol for a model's preprocessing, set where the model
is made, and the vitkit classes themselves stay free of it.

Why registration at ``import vitkit`` is acceptable: timm finds models only through its registry, and the issue's
contract is that ``import vitkit`` suffices. The call sits in the package's public-API module (never in
``vitkit.models``, which stays free of side effects), adds names under the ``vitkit_`` prefix only (it cannot
shadow a timm model), builds nothing, and is idempotent.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from torch import nn

from vitkit.models import CvT, VisionTransformer, get_preset, list_models
from vitkit.models.registry import Preset

PREFIX = "vitkit_"
FAMILIES = (VisionTransformer, CvT)  # the classifiers timm's tools can drive
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# Preprocessing of the weights by repo-name prefix (their model cards / timm's and Hugging Face's configs).
WEIGHTS_PREPROCESSING = {
    "timm/vit_": {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "crop_pct": 0.9, "interpolation": "bicubic"},
    "microsoft/cvt": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "crop_pct": 0.875, "interpolation": "bicubic"},
}
IGNORED = {"drop_block_rate", "bn_momentum", "bn_eps", "scriptable", "exportable", "no_jit"}  # CNN-only options
default_cfgs: dict[str, dict[str, Any]] = {}  # timm's register_model reads the cfgs from the module of the entry


def register_timm_models() -> list[str]:
    """Register ``vitkit_<preset>`` in timm for every ViT and CvT preset (once); returns the names."""
    from timm.models import is_model, register_model

    names = []
    for name in list_models():
        preset = get_preset(name)
        if not issubclass(preset.model_cls, FAMILIES):
            continue
        entry_name = PREFIX + name
        names.append(entry_name)
        if is_model(entry_name):
            continue
        default_cfgs[entry_name] = pretrained_cfg(preset)
        entry = _entry_point(name)
        entry.__name__ = entry.__qualname__ = entry_name
        entry.__module__ = __name__
        setattr(sys.modules[__name__], entry_name, entry)  # timm lists entry points in this module's __all__
        register_model(entry)
    return names


def pretrained_cfg(preset: Preset) -> dict[str, Any]:
    """timm's description of preset ``preset``'s input and head, with the preprocessing of its default weights."""
    from vitkit.weights.hub import PRETRAINED

    config = preset.config
    chans = config.in_chans
    repos = PRETRAINED.get(preset.name, ())
    known = next((v for k, v in WEIGHTS_PREPROCESSING.items() if repos and repos[0].startswith(k)), None)
    if known is None:  # no weights: neutral statistics; the small presets are evaluated on a plain resize
        large = config.img_size >= 224 and chans == 3
        known = {"mean": IMAGENET_MEAN if large else (0.5,) * chans, "std": IMAGENET_STD if large else (0.5,) * chans,
                 "crop_pct": 0.875 if large else 1.0, "interpolation": "bicubic" if large else "bilinear"}
    first_conv = "patch_embed.proj" if preset.model_cls is VisionTransformer else "stages.0.patch_embed.proj"
    return {"architecture": PREFIX + preset.name, "hf_hub_id": repos[0] if repos else None,
            "input_size": (chans, config.img_size, config.img_size), "fixed_input_size": False, **known,
            "crop_mode": "center", "num_classes": config.num_classes, "first_conv": first_conv, "classifier": "head"}


def _entry_point(name: str) -> Callable[..., nn.Module]:
    def create(pretrained: bool = False, pretrained_cfg: Any = None, pretrained_cfg_overlay: dict | None = None,
               cache_dir: Any = None, **kwargs: Any) -> nn.Module:
        from vitkit.build import create_model

        model = create_model(name, pretrained=bool(pretrained), **config_overrides(name, kwargs))
        cfg = dict(default_cfgs[PREFIX + name], **(pretrained_cfg_overlay or {}))
        cfg["num_classes"] = model.num_classes
        model.pretrained_cfg = cfg  # timm's protocol (see the module docstring)
        return model

    return create


def config_overrides(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """timm's ``create_model`` keywords → config fields of preset ``name``; one it cannot honour is a TypeError,
    as timm's own entry points raise for unknown keywords."""
    fields = {f.name for f in dataclasses.fields(get_preset(name).config)}
    out = {}
    for key, value in kwargs.items():
        if value is None or key in IGNORED:
            continue
        if key not in fields:
            raise TypeError(f"{PREFIX}{name}: no option {key!r}; its config fields are {sorted(fields)}")
        out[key] = value
    return out
