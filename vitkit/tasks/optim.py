"""Optimiser parameter groups and learning-rate schedules shared by every task.

Weight decay is not applied to biases, normalisation weights (any tensor with ≤ 1 dimension) or to what the
model lists in ``no_weight_decay()`` (position tables, class tokens, object queries), as in timm and DeiT.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def param_groups(
    model: nn.Module,
    *,
    weight_decay: float,
    lr_scale: Callable[[str], float] | None = None,
) -> list[dict]:
    """AdamW parameter groups: decay / no decay, optionally split further by a per-parameter ``lr_scale``.

    ``lr_scale(name)`` multiplies the learning rate of parameter ``name`` (layer-wise decay, a slower backbone);
    each group carries it as ``lr_scale`` for the scheduler. Frozen parameters are left out.
    """
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    groups: dict[tuple[float, float], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 or name in skip or name.split(".")[-1] in skip
        wd = 0.0 if no_decay else weight_decay
        scale = lr_scale(name) if lr_scale is not None else 1.0
        group = groups.setdefault((wd, scale), {"params": [], "weight_decay": wd, "lr_scale": scale})
        group["params"].append(p)
    return list(groups.values())


def warmup_cosine(warmup_steps: int, total_steps: int, *, min_ratio: float = 0.0) -> Callable[[int], float]:
    """Multiplier for ``LambdaLR``: linear warm-up from ~0 to 1 over ``warmup_steps``, then cosine to ``min_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def warmup_cosine_scheduler(trainer: Any, optimizer: torch.optim.Optimizer, *, warmup_epochs: float = 0.0,
                            min_lr_ratio: float = 0.0) -> dict:
    """A per-step linear warm-up + cosine schedule over the trainer's whole run, as Lightning's ``lr_scheduler``
    entry. With a time budget and no epoch limit the run's length is unknown, so there is no warm-up and the rate
    stays at its peak."""
    total = trainer.estimated_stepping_batches
    epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
    if not math.isfinite(total) or epochs is None:
        schedule = warmup_cosine(0, 10**12, min_ratio=min_lr_ratio)
    else:
        schedule = warmup_cosine(int(warmup_epochs * total / epochs), int(total), min_ratio=min_lr_ratio)
    return {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, schedule), "interval": "step"}
