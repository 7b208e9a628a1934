"""A training loss that is NaN or infinite stops the run with its step and batch, or skips that batch.

Without a check, one non-finite loss turns every weight into NaN through the optimiser step, and the run goes on
training on NaN until someone looks at the curves. Each task passes its loss through ``checked_loss`` before
returning it from ``training_step``:

- ``policy="stop"`` (the default) raises ``NonFiniteLossError`` naming the global step, the epoch, the batch's index
  in the epoch and what the task knows of the batch (e.g. DETR's image ids);
- ``policy="skip"`` logs a warning and returns ``None``, which makes Lightning skip the backward pass and leave the
  weights untouched (the optimiser and the learning-rate schedule still count the step); skipped batches are
  counted in ``train/skipped_batches``.

Under a distributed strategy the verdict is shared (an all-reduce of one number per step): if any process's loss is
non-finite, every process stops or skips, so none waits forever for the others' gradients.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import torch
from torch import Tensor

from vitkit.errors import VitkitError

log = logging.getLogger(__name__)
NonFinitePolicy = Literal["stop", "skip"]


class NonFiniteLossError(VitkitError, RuntimeError):
    """The training loss became NaN or infinite."""


def checked_loss(task: Any, loss: Tensor, batch_idx: int, *, policy: NonFinitePolicy = "stop",
                 about: str = "") -> Tensor | None:
    """``loss`` when it is finite on every process; else raise (``stop``) or return ``None`` (``skip``).

    ``about`` describes the batch for the message (e.g. ``"image ids [3, 17]"``).
    """
    if policy not in ("stop", "skip"):
        raise ValueError(f"nonfinite_loss={policy!r}: use 'stop' or 'skip'")
    finite = torch.isfinite(loss.detach()).all().to(torch.int32).reshape(1)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
    if bool(finite.item()):
        return loss
    where = (f"at global step {task.global_step} (epoch {task.current_epoch}, batch {batch_idx} of the epoch"
             f"{', ' + about if about else ''})")
    here = loss.detach().float().flatten()
    local = f"training loss {here[0].item()}" if not torch.isfinite(here).all() else "loss on another process"
    if policy == "skip":
        log.warning("%s %s: batch skipped (nonfinite_loss: skip)", local, where)
        task.log("train/skipped_batches", 1.0, on_step=False, on_epoch=True, reduce_fx="sum", batch_size=1)
        return None
    raise NonFiniteLossError(
        f"non-finite {local} {where}; training on it would turn the weights into NaN",
        "lower the learning rate, clip gradients (--trainer.gradient_clip_val), check the data (vitkit check-data), or "
        "set --model.init_args.nonfinite_loss skip to skip such batches")
