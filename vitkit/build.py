"""Building a model and loading its weights: the one place that joins the presets (``vitkit.models``) and the
checkpoint converters (``vitkit.weights``).

``create_model(name, *, pretrained=..., checkpoint=..., **overrides)`` builds a vitkit preset (or, for a name that
is not one, a timm model) with config fields overridden, then loads ``checkpoint`` in any layout the family
understands (vitkit, Lightning ``.ckpt``, timm, Hugging Face, official releases; ``.pth``, ``.bin``, ``.ckpt``,
``.safetensors``); nothing in a file is executed. A checkpoint ``hf-hub:ORG/REPO[/FILE]`` is fetched into the Hugging
Face cache first (``vitkit.weights.hub``); ``pretrained=True`` names the preset's default repo from the table there
(for a timm model, timm's own ``hf_hub_id``), ``pretrained="backbone"`` a detector's ImageNet backbone.
``create_for_data`` does the same for a model sized to a dataset (class count, channels, image size), as the tasks
build theirs.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from pathlib import Path
from typing import Any, Literal

from torch import nn

from vitkit.errors import ConfigError, UnknownModelError
from vitkit.models import build_model, get_preset, is_model, list_models
from vitkit.models.registry import override_config
from vitkit.weights import LoadReport, hub, load_checkpoint
from vitkit.weights.export import described_model

log = logging.getLogger(__name__)
MAX_TOKEN_RATIO = 4  # a run with more tokens per image than this many times the preset's design is stopped


Pretrained = bool | Literal["backbone"]


def create_model(name: str | None = None, *, pretrained: Pretrained = False, checkpoint: str | Path | None = None,
                 **overrides: Any) -> nn.Module:
    """Build ``name`` (a vitkit preset, else a timm model) with config ``overrides``; load ``checkpoint`` if given
    (a path or ``hf-hub:ORG/REPO[/FILE]``), or with ``pretrained=True`` the known weights of ``name``
    (``vitkit.weights.hub.PRETRAINED``; timm's for a timm model), or with ``pretrained="backbone"`` the ImageNet
    weights of a detector's backbone (the rest freshly initialised).

    Without ``name`` the checkpoint must describe its model (a ``.safetensors`` file written by ``vitkit export``):
    the model is built from the preset and config stored in it, with ``overrides`` on top. The load report (loaded,
    re-initialised and skipped keys) is logged; ``create_model_and_report`` returns it.
    """
    return create_model_and_report(name, pretrained=pretrained, checkpoint=checkpoint, **overrides)[0]


def create_model_and_report(name: str | None = None, *, pretrained: Pretrained = False,
                            checkpoint: str | Path | None = None, **overrides: Any
                            ) -> tuple[nn.Module, LoadReport | None]:
    """``create_model`` that also returns the load report (``None`` without a checkpoint)."""
    if pretrained and checkpoint is not None:
        raise ConfigError(f"both pretrained={pretrained!r} and checkpoint={str(checkpoint)!r} were given",
                          "pass one of them: pretrained names the weights from the table, checkpoint any file")
    path = hub.resolve(checkpoint) if checkpoint is not None else None
    if name is None:
        if path is None:
            raise ConfigError("create_model needs a preset name or a checkpoint",
                              "pass a name from `vitkit models`, or a .safetensors file written by `vitkit export`")
        name, config = described_model(path)
        model = get_preset(name).model_cls(override_config(name, config, overrides))
    elif is_model(name):
        model = build_model(name, **overrides)
    else:
        model = _timm_model(name, overrides)
    if pretrained:
        checkpoint = pretrained_checkpoint(name, model, pretrained)
        path = hub.resolve(checkpoint)
    report = load_checkpoint(model, path, source=str(checkpoint)) if path is not None else None
    return model, report


def pretrained_checkpoint(name: str, model: nn.Module, which: Pretrained = True) -> str:
    """The hub id that ``pretrained=which`` means for model ``name`` (``model``, already built)."""
    if which == "backbone":
        backbone = getattr(getattr(model, "config", None), "backbone", None)
        if not isinstance(backbone, str):
            raise ConfigError(f"pretrained='backbone': {name} has no timm backbone",
                              "it is for detectors (detr_*, rtdetr_*); use pretrained=True for the whole model")
        return hub.HUB_PREFIX + hub.BACKBONES[backbone] if backbone in hub.BACKBONES else _timm_hub_id(backbone)
    if which is not True:
        raise ConfigError(f"pretrained={which!r}", "use true, false or 'backbone'")
    found = hub.pretrained_id(name) if is_model(name) else _timm_hub_id(name)
    if found is None:
        near = difflib.get_close_matches(name, list(hub.PRETRAINED), n=3, cutoff=0.5)
        raise ConfigError(f"no pretrained weights are known for {name!r}",
                          f"presets with weights: {', '.join(near or sorted(hub.PRETRAINED))}; or pass "
                          f"checkpoint=PATH or checkpoint='hf-hub:ORG/REPO'")
    return found


def _timm_hub_id(name: str) -> str | None:
    """timm's Hub id (and file, when it names one) for timm model ``name`` (``arch`` or ``arch.tag``)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        return None
    return hub.HUB_PREFIX + cfg.hf_hub_id + (f"/{cfg.hf_hub_filename}" if cfg.hf_hub_filename else "")


def create_for_data(name: str, *, num_classes: int | None = None, in_chans: int | None = None,
                    img_size: int | None = None, checkpoint: str | Path | None = None, pretrained: Pretrained = False,
                    allow_large_inputs: bool = False, **overrides: Any) -> tuple[nn.Module, LoadReport | None]:
    """``create_model_and_report`` sized for the data: ``num_classes``, ``in_chans`` and ``img_size`` (``None``: the
    preset's own) set the fields of those names the model has; explicit ``overrides`` win over them.

    A vitkit preset asked to run on images whose token count exceeds its design by more than ``MAX_TOKEN_RATIO``×
    (a 32-px CIFAR preset fed 224-px images: 49× the tokens, and the memory to match) is refused with the sizes and
    the flags that settle it, unless ``allow_large_inputs``.
    """
    sized = {k: v for k, v in {"num_classes": num_classes, "in_chans": in_chans, "img_size": img_size}.items()
             if v is not None}
    if is_model(name):
        fields = {f.name for f in dataclasses.fields(get_preset(name).config)}
        sized = {k: v for k, v in sized.items() if k in fields}
        if not allow_large_inputs:
            check_input_size(name, overrides.get("img_size", sized.get("img_size")))
    return create_model_and_report(name, pretrained=pretrained, checkpoint=checkpoint, **{**sized, **overrides})


def check_input_size(name: str, img_size: int | None) -> None:
    """Refuse ``img_size`` for preset ``name`` when it gives more than ``MAX_TOKEN_RATIO``× the design's tokens."""
    design = getattr(get_preset(name).config, "img_size", None)
    if img_size is None or design is None or (img_size / design) ** 2 <= MAX_TOKEN_RATIO:
        return
    ratio = (img_size / design) ** 2
    raise ConfigError(f"{name} is designed for {design}×{design} images but the run would feed it {img_size}×"
                      f"{img_size} ({ratio:.0f}× the tokens per image, and the memory and time to match)",
                      f"pass --data.image_size {design} to resize the images to the model, or "
                      f"--model.init_args.allow_large_inputs true to train at {img_size}")


def _timm_model(name: str, overrides: dict[str, Any]) -> nn.Module:
    import timm

    if not timm.is_model(name):
        near = difflib.get_close_matches(name, sorted(set(list_models()) | set(timm.list_models())), n=4, cutoff=0.6)
        hint = f"did you mean {', '.join(near)}? " if near else ""
        raise UnknownModelError(f"unknown model {name!r}: neither a vitkit preset nor a timm model",
                                f"{hint}`vitkit models` lists the vitkit presets, timm.list_models() timm's")
    kwargs = dict(overrides)
    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except TypeError:
        if "img_size" not in kwargs:
            raise
        kwargs.pop("img_size")  # CNNs take any image size and do not accept the argument
        return timm.create_model(name, pretrained=False, **kwargs)
