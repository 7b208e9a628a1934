"""The global random generators of every process, saved in checkpoints and restored when training resumes.

Dropout, stochastic depth and mixup draw from the process-wide generators of torch (CPU and CUDA), numpy and Python.
Lightning saves none of them, so a resumed run would draw different masks than the run it continues. This callback
stores each process's states in the checkpoint (gathered from every rank; states are per process) and puts them back
just before the first training batch after a resume — after everything that runs between loading the checkpoint and
training (model set-up, compilation, a sanity check), so none of that can shift the streams. The data's randomness
does not live in these generators (``vitkit.data.sampling``), and vitkit's loaders seed their workers from their own
generators, so the streams advance only with training steps.

Everything stored is tensors, numbers and lists, readable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)


def collect_rng_states() -> dict[str, Any]:
    """This process's global generator states, as tensors, numbers and lists."""
    version, python_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"torch": torch.get_rng_state(),
              "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                        "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
              "python": {"version": version, "state": list(python_state), "gauss": gauss}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()  # the current device's, the one this process trains on
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Put back what ``collect_rng_states`` returned."""
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


def _all_ranks(states: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rank's ``states`` (a list indexed by rank), or ``[states]`` outside a process group."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [states]
    gathered: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, states)
    return gathered


class RngStateCallback(Callback):
    """Save every process's global generator states in checkpoints; restore them before the first resumed batch."""

    def __init__(self) -> None:
        self._pending: list[dict[str, Any]] | None = None

    def state_dict(self) -> dict[str, Any]:
        # Lightning builds the checkpoint on every rank (and writes it on rank 0), so all ranks take part here
        return {"ranks": _all_ranks(collect_rng_states())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("ranks")

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self._pending is None:
            return
        ranks, self._pending = self._pending, None
        if len(ranks) != trainer.world_size:
            log.warning("the checkpoint holds random states of %d processes but this run has %d: dropout and mixup "
                        "draws continue from fresh streams, not from the interrupted run's", len(ranks),
                        trainer.world_size)
            return
        set_rng_states(ranks[trainer.global_rank])
