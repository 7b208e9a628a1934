"""Gradient (activation) checkpointing of one block: keep its input, recompute its inside in the backward pass.

``run_block(block, *args, checkpoint=True, **kwargs)`` is ``block(*args, **kwargs)`` whose intermediate activations
are not stored; the backward pass runs the block's forward again (``torch.utils.checkpoint``, the non-reentrant
variant, which handles keyword arguments, outputs that need no gradient and nested checkpoints). The random state is
saved and replayed, so dropout and stochastic-depth masks are the same in both passes and the gradients equal those
of the plain call. It applies only while training with gradients enabled; evaluation and sampling run the block
directly. Training memory for activations drops from every block's internals to one block's at a time, for about
one extra forward pass of compute (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def run_block(block: nn.Module, *args: Any, checkpoint: bool, method: str = "__call__", **kwargs: Any) -> Any:
    """``block.<method>(*args, **kwargs)`` (by default ``block(...)``), checkpointed when ``checkpoint`` and the block
    is training with gradients on."""
    call = getattr(block, method)
    if checkpoint and block.training and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(call, *args, use_reentrant=False, **kwargs)
    return call(*args, **kwargs)
