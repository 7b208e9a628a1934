"""Model folders in the layout the Hugging Face Hub shows: ``config.json`` + ``model.safetensors`` + ``README.md``.

``save_pretrained(model, directory, preset=...)`` writes the folder: ``config.json`` (the preset, the model's full
config, class names, preprocessing and what is known of the training run), ``model.safetensors`` (the weights,
self-describing as ``vitkit.weights.export`` writes them, so ``create_model(checkpoint=…/model.safetensors)`` works
too) and a model card ``README.md`` (``vitkit.weights.model_card``). ``from_pretrained(folder or hub id)`` rebuilds
the model from ``config.json`` and loads the weights through the ordinary checkpoint loader (key report, head
re-initialised for another ``num_classes``); ``read_folder`` gives the rest of ``config.json``. ``push_to_hub``
uploads a folder (optional: needs network and a Hub token).

These are functions, not methods of a mixin that every model would inherit: the models (``vitkit.models``) must not
depend on weight I/O, and a folder describes a model by its preset and config, which functions hold as well.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from torch import nn

from vitkit.atomic import atomic_write
from vitkit.errors import CheckpointError, ConfigError, MissingFileError
from vitkit.models.config_io import config_from_json, config_to_json
from vitkit.models.registry import get_preset, override_config
from vitkit.weights import hub
from vitkit.weights.converters import load_checkpoint
from vitkit.weights.export import export_safetensors
from vitkit.weights.model_card import model_card

CONFIG_FILE, WEIGHTS_FILE, CARD_FILE = "config.json", "model.safetensors", "README.md"
_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


def save_pretrained(model: nn.Module, directory: str | Path, *, preset: str, class_names: list[str] | None = None,
                    category_ids: list[int] | None = None, preprocessing: dict[str, Any] | None = None,
                    training: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (built from ``preset``, config fields possibly changed) as a model folder; returns it.

    ``training`` (optional) records the run for the card: ``data`` (a description), ``metrics`` (name → value),
    ``epoch``, ``global_step``.
    """
    preset_entry = get_preset(preset)
    if not isinstance(model, preset_entry.model_cls):
        raise ConfigError(f"preset {preset!r} builds {preset_entry.model_cls.__name__}, not {type(model).__name__}",
                          "pass the preset the model was built from")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    extra = {k: v for k, v in {"class_names": class_names, "category_ids": category_ids,
                               "preprocessing": preprocessing}.items() if v is not None}
    info = {"library_name": "vitkit", "architecture": type(model).__name__, "preset": preset_entry.name,
            "config": json.loads(config_to_json(model.config)), **extra, "training": training or {}}
    export_safetensors(model, directory / WEIGHTS_FILE, preset=preset_entry.name, extra=extra)
    atomic_write(directory / CONFIG_FILE, lambda f: f.write(json.dumps(info, indent=2).encode()))
    card = model_card(info, preset_entry, sum(p.numel() for p in model.parameters()))
    atomic_write(directory / CARD_FILE, lambda f: f.write(card.encode()))
    return directory


def from_pretrained(source: str | Path, **overrides: Any) -> nn.Module:
    """The model of a folder written by ``save_pretrained`` (a path, ``hf-hub:ORG/REPO`` or ``ORG/REPO``), with
    config ``overrides`` (e.g. ``num_classes`` for a new, freshly initialised head)."""
    folder = local_folder(source)
    info = read_folder(folder)
    preset = get_preset(info["preset"])
    config = config_from_json(type(preset.config), json.dumps(info["config"]))
    model = preset.model_cls(override_config(preset.name, config, overrides))
    load_checkpoint(model, folder / WEIGHTS_FILE, source=str(source))
    return model


def read_folder(source: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a model folder (preset, config, class names, preprocessing, training)."""
    path = local_folder(source) / CONFIG_FILE
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})", "write the folder again with save_pretrained") from e
    if not isinstance(info, dict) or "preset" not in info or "config" not in info:
        raise CheckpointError(f"{path} is not a vitkit model folder (no 'preset' / 'config')",
                              "for a Hugging Face transformers repo pass a preset and the repo as checkpoint, "
                              "e.g. create_model('cvt_13', checkpoint='hf-hub:microsoft/cvt-13')")
    return info


def local_folder(source: str | Path) -> Path:
    """``source`` as a local folder: a directory as it is, a hub id's config and weights fetched into the cache."""
    path = Path(source)
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise MissingFileError(f"{path} has no {CONFIG_FILE}",
                                   "pass a folder written by vitkit.save_pretrained or `vitkit export --format hf`")
        return path
    text = str(source)
    if not (hub.is_hub_id(text) or _REPO_ID.fullmatch(text)):
        raise MissingFileError(f"model folder {text} does not exist", "pass a folder or a hub id hf-hub:ORG/REPO")
    repo, _ = hub.parse(text if hub.is_hub_id(text) else hub.HUB_PREFIX + text)
    config = hub.download(repo, CONFIG_FILE)
    hub.download(repo, WEIGHTS_FILE)  # the same snapshot folder
    return config.parent


def push_to_hub(directory: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
                commit_message: str = "Upload vitkit model") -> str:
    """Upload a model folder to the Hub repo ``ORG/REPO`` (created if needed); returns the commit URL.

    Needs network and a token with write access (``token``, else ``hf auth login``'s).
    """
    directory = Path(directory)
    missing = [n for n in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE) if not (directory / n).is_file()]
    if missing:
        raise MissingFileError(f"{directory} lacks {missing}", "write it with vitkit.save_pretrained first")
    if not _REPO_ID.fullmatch(repo_id):
        raise ConfigError(f"repo id {repo_id!r}", "write it as ORG/REPO (or USER/REPO), without hf-hub:")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return str(api.upload_folder(folder_path=str(directory), repo_id=repo_id, commit_message=commit_message))
