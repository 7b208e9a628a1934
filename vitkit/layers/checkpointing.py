"""Gradient (activation) checkpointing of one block: keep its input, recompute its inside in the backward pass.

``run_block(block, *args, checkpoint=True, **kwargs)`` is ``block(*args, **kwargs)`` whose intermediate activations
are not stored; the backward pass runs the block's forward again (``torch.utils.checkpoint``, the non-reentrant
variant, which handles keyword arguments, outputs that need no gradient and nested checkpoints). The random state is
saved and replayed, so dropout and stochastic-depth masks are the same in both passes and the gradients equal those
of the plain call. It applies only while training with gradients enabled; evaluation and sampling run the block
directly. Training memory for activations drops from every block's internals to one block's at a time, for about
one extra forward pass of compute (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost").

A block with BatchNorm layers in training mode (RT-DETR's fusion blocks) would update their running statistics a
second time in the recomputation; ``run_block`` puts them back as the forward pass left them, so they too are those of
the plain call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def run_block(block: nn.Module, *args: Any, checkpoint: bool, method: str = "__call__", **kwargs: Any) -> Any:
    """``block.<method>(*args, **kwargs)`` (by default ``block(...)``), checkpointed when ``checkpoint`` and the block
    is training with gradients on."""
    call = getattr(block, method)
    if checkpoint and block.training and torch.is_grad_enabled():
        norms = [m for m in block.modules() if isinstance(m, _BatchNorm) and m.training and m.running_mean is not None]
        if norms:
            kwargs["context_fn"] = lambda: (contextlib.nullcontext(), _statistics_kept(norms))
        return torch.utils.checkpoint.checkpoint(call, *args, use_reentrant=False, **kwargs)
    return call(*args, **kwargs)


@contextlib.contextmanager
def _statistics_kept(norms: list[_BatchNorm]) -> Iterator[None]:
    """Running mean, variance and batch count of ``norms`` restored on exit (the recomputation updates them)."""
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, (mean, var, count) in zip(norms, saved, strict=True):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
