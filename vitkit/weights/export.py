"""Self-describing weights: a ``.safetensors`` file that names its preset and carries its config.

``export_safetensors(model, path, preset=...)`` writes the model's tensors with metadata (all strings, as the format
requires): ``vitkit.preset`` (the registry name), ``vitkit.config`` (the model's full config, JSON, see
``vitkit.models.config_io``) and any extra entries given (class names, category ids, preprocessing). A safetensors
file holds tensors and strings only: reading it cannot run code. ``create_model(checkpoint=path)`` rebuilds the
model from the metadata alone (``described_model``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from vitkit.atomic import atomic_write
from vitkit.errors import CheckpointError, MissingFileError
from vitkit.models.config_io import config_from_json, config_to_json
from vitkit.models.registry import get_preset

PRESET_KEY, CONFIG_KEY = "vitkit.preset", "vitkit.config"


def export_safetensors(model: nn.Module, path: str | Path, *, preset: str,
                       extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s state dict and its description to ``path`` (atomically); extra values are stored as JSON."""
    from safetensors.torch import save

    config = getattr(model, "config", None)
    if config is None:
        raise CheckpointError(f"{type(model).__name__} has no vitkit config to describe it",
                              "only vitkit presets can be exported with their config")
    metadata = {"format": "pt", PRESET_KEY: preset, CONFIG_KEY: config_to_json(config)}
    metadata.update({f"vitkit.{k}": json.dumps(v) for k, v in (extra or {}).items()})
    # contiguous copies: safetensors refuses views and tensors that share memory
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda f: f.write(save(tensors, metadata=metadata)))


def described_model(path: str | Path) -> tuple[str, Any]:
    """``(preset name, config)`` stored in a file written by ``export_safetensors``; ``CheckpointError`` otherwise."""
    metadata = read_metadata(path)
    if PRESET_KEY not in metadata or CONFIG_KEY not in metadata:
        raise CheckpointError(f"{path} does not say which model it holds (no {PRESET_KEY!r} / {CONFIG_KEY!r} "
                              f"metadata; files written by `vitkit export` do)",
                              "pass the preset name: create_model('<preset>', checkpoint=...)")
    preset = get_preset(metadata[PRESET_KEY])
    return preset.name, config_from_json(type(preset.config), metadata[CONFIG_KEY])


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file (its header only); ``{}`` for other formats."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return {}
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} does not exist", "check the path")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return dict(f.metadata() or {})
    except SafetensorError as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})",
                              "the file is truncated or not safetensors: export it again") from e
