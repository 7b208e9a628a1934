"""Building a named classifier: a vitkit preset first, else a timm model."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from torch import nn

from vitkit.errors import UnknownModelError
from vitkit.models import create_model, get_preset, is_model, list_models


def build_classifier(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    img_size: int | None = None,
    checkpoint: str | None = None,
    **overrides: Any,
) -> nn.Module:
    """A vitkit preset (``create_model``) or, failing that, a timm classifier, sized for the data.

    ``num_classes`` / ``in_chans`` / ``img_size`` override the preset's fields of those names when the preset has
    them; explicit ``overrides`` win over them.
    """
    if is_model(name):
        fields = {f.name for f in dataclasses.fields(get_preset(name).config)}
        sized = {"num_classes": num_classes, "in_chans": in_chans, "img_size": img_size}
        sized = {k: v for k, v in sized.items() if v is not None and k in fields}
        return create_model(name, checkpoint=checkpoint, **{**sized, **overrides})
    return _timm_classifier(name, num_classes, in_chans, img_size, checkpoint, overrides)


def _timm_classifier(name, num_classes, in_chans, img_size, checkpoint, overrides) -> nn.Module:
    import timm

    if not timm.is_model(name):
        near = difflib.get_close_matches(name, list_models() + timm.list_models(), n=4, cutoff=0.6)
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        raise UnknownModelError(f"unknown model {name!r}: neither a vitkit preset nor a timm model.{hint}")
    kwargs = {k: v for k, v in {"num_classes": num_classes, "in_chans": in_chans}.items() if v is not None}
    kwargs.update(overrides)
    if img_size is not None and "img_size" not in kwargs:
        try:  # Transformers take the image size; CNNs do not accept the argument
            model = timm.create_model(name, pretrained=False, img_size=img_size, **kwargs)
        except TypeError:
            model = timm.create_model(name, pretrained=False, **kwargs)
    else:
        model = timm.create_model(name, pretrained=False, **kwargs)
    if checkpoint is not None:
        from vitkit.weights import load_state_dict, read_checkpoint

        classifier = model.pretrained_cfg.get("classifier", "head")
        classifiers = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        model.reinit_prefixes = tuple(f"{c}." for c in classifiers)
        model.load_report = load_state_dict(model, read_checkpoint(checkpoint).state_dict, source=str(checkpoint))
    return model
