"""The model card (``README.md``) of a model folder: what the Hub shows on the model's page.

Front matter (library, pipeline tag, tags) and sections: the model (preset, description, fields changed from the
preset, parameter count), training data and the run's metrics (when recorded; said so when not), class names,
preprocessing, and how to load it. Everything comes from the folder's ``config.json`` content.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vitkit.models.registry import Preset

PIPELINE = {"VisionTransformer": "image-classification", "CvT": "image-classification",
            "DETR": "object-detection", "ImageTransformer": "unconditional-image-generation"}
MAX_CLASSES_LISTED = 100


def model_card(info: dict[str, Any], preset: Preset, num_params: int) -> str:
    """Markdown for the folder described by ``info`` (``config.json``'s content) built from ``preset``."""
    arch = info["architecture"]
    lines = ["---", "library_name: vitkit", f"pipeline_tag: {PIPELINE.get(arch, 'image-classification')}",
             "tags:", "- vitkit", f"- {arch.lower()}", "---", "",
             f"# {preset.name} ({arch}, vitkit)", ""]
    lines += _model_section(info, preset, num_params)
    lines += _training_section(info.get("training") or {})
    lines += _classes_section(info.get("class_names"))
    lines += _preprocessing_section(info.get("preprocessing"))
    lines += ["## Use", "", "```python", "import vitkit", "",
              'model = vitkit.from_pretrained("<this folder, or hf-hub:ORG/REPO>").eval()', "```", ""]
    return "\n".join(lines)


def _model_section(info: dict[str, Any], preset: Preset, num_params: int) -> list[str]:
    base = dataclasses.asdict(preset.config)
    changed = {k: v for k, v in info["config"].items() if _plain(base.get(k)) != v}
    lines = ["## Model", "", f"- Preset: `{preset.name}`" + (f" — {preset.description}" if preset.description else ""),
             f"- Parameters: {num_params / 1e6:.2f}M"]
    if changed:
        lines.append("- Config fields changed from the preset: "
                     + ", ".join(f"`{k}={v}`" for k, v in sorted(changed.items())))
    return [*lines, "- Full config: `config.json` (`config`)", ""]


def _training_section(training: dict[str, Any]) -> list[str]:
    lines = ["## Training", ""]
    lines.append(f"- Data: {training['data']}" if training.get("data") else "- Data: not recorded")
    if "epoch" in training or "global_step" in training:
        lines.append(f"- Trained for {training.get('epoch', '?')} epochs ({training.get('global_step', '?')} steps)")
    metrics = training.get("metrics") or {}
    if metrics:
        lines += ["", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4g} |" if isinstance(value, float) else f"| {name} | {value} |"
                  for name, value in metrics.items()]
    else:
        lines.append("- Metrics: not recorded")
    return [*lines, ""]


def _classes_section(class_names: list[str] | None) -> list[str]:
    if not class_names:
        return []
    shown = ", ".join(f"{i}: {n}" for i, n in enumerate(class_names[:MAX_CLASSES_LISTED]))
    rest = len(class_names) - MAX_CLASSES_LISTED
    more = f" … and {rest} more (config.json)" if rest > 0 else ""
    return [f"## Classes ({len(class_names)})", "", shown + more, ""]


def _preprocessing_section(pre: dict[str, Any] | None) -> list[str]:
    if not pre:
        return ["## Preprocessing", "", "Not recorded.", ""]
    how = {"resize": f"resize to {pre['image_size']}×{pre['image_size']}",
           "center_crop": f"shorter side to {round(pre['image_size'] / pre.get('crop_fraction', 0.875))}, "
                          f"central {pre['image_size']}×{pre['image_size']} crop",
           "shorter_side": f"shorter side to {pre['image_size']} (longer at most {pre.get('max_size')})"}
    norm = ("raw 8-bit intensities" if pre.get("task") == "generation"
            else f"(pixel / 255 − mean) / std with mean {pre.get('mean')} and std {pre.get('std')}")
    return ["## Preprocessing", "", f"{pre.get('in_chans', 3)}-channel images: "
            f"{how.get(pre.get('resize'), pre.get('resize'))}, then {norm} (`config.json`, `preprocessing`).", ""]


def _plain(value: Any) -> Any:
    """A config value as JSON gives it back (tuples as lists)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
