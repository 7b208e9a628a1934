"""Reading checkpoint files without executing anything in them.

``.safetensors`` files are read with safetensors; everything else with ``torch.load(weights_only=True)``, which
refuses pickled code. Wrappers are peeled off: Lightning (``state_dict`` + ``hyper_parameters``, the task's
``model.`` prefix), training checkpoints (``model`` / ``state_dict`` / ``module.`` from DDP).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vitkit.errors import CheckpointError, MissingFileError


@dataclass
class Checkpoint:
    path: Path
    state_dict: dict[str, Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)  # safetensors metadata or Lightning hyper-parameters


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read ``path`` into a flat ``{name: tensor}`` state dict, never running code stored in the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} does not exist", "check the path (relative paths start from the "
                               "current folder)")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    state_dict, metadata = _unwrap(load_pickle_safely(path), path)
    return Checkpoint(path, state_dict, metadata)


def load_pickle_safely(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors that name the file and say what to do."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} does not exist", "check the path (relative paths start from the "
                               "current folder)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = str(e).split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
        if "Unsupported operand" in detail or "invalid load key" in detail:
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (unreadable pickle: {detail})",
                                  "pass a .pth/.bin/.ckpt/.safetensors file written by PyTorch") from e
        raise CheckpointError(
            f"{path}: refused to load: the file holds pickled objects other than tensors, and loading them could "
            f"run code ({detail})",
            "re-save only the state dict (torch.save(model.state_dict(), ...)) or use .safetensors") from e
    except (RuntimeError, EOFError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e})",
                              "the file is truncated or not a checkpoint: write it again or pass another") from e


def _read_safetensors(path: Path) -> Checkpoint:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            state_dict = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    except SafetensorError as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})",
                              "the file is truncated or not safetensors: write it again or pass another") from e
    return Checkpoint(path, state_dict, metadata)


def _unwrap(obj: Any, path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}",
                              "pass a model checkpoint (a state dict, or a training checkpoint holding one)")
    metadata: dict[str, Any] = {}
    if isinstance(obj.get("state_dict"), dict) and "pytorch-lightning_version" in obj:
        metadata = dict(obj.get("hyper_parameters") or {})
        state_dict = _strip_prefix(obj["state_dict"], "model.")
    else:
        if isinstance(obj.get("ema"), dict) and isinstance(obj["ema"].get("module"), dict):  # official RT-DETR
            obj = {"model": obj["ema"]["module"]}
        for key in ("state_dict", "model"):  # timm / DETR / torchvision training checkpoints
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        state_dict = obj
    state_dict = _strip_prefix(state_dict, "module.")
    bad = [k for k, v in state_dict.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entries that are not tensors: {bad[:5]}",
                              "pass a model checkpoint (a state dict, or a training checkpoint holding one)")
    return state_dict, metadata


def _strip_prefix(state_dict: dict[str, Any], prefix: str) -> dict[str, Any]:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict
