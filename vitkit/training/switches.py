"""Speed and memory switches every task offers: ``torch.compile`` and gradient (activation) checkpointing.

Both leave the numbers as they are (up to floating-point reassociation) and the weights' names unchanged, so
checkpoints move freely between runs with and without them. Mixed precision is Lightning's
``--trainer.precision bf16-mixed``.

- ``grad_checkpointing``: each Transformer block of the model keeps only its input for the backward pass and
  recomputes its inside there (``torch.utils.checkpoint``, non-reentrant; dropout masks are replayed). Activation
  memory falls from every block's internals to one block's, for about one more forward pass of compute. The model
  provides ``set_grad_checkpointing(enable)`` (vitkit's families and timm's models do).
- ``compile``: ``nn.Module.compile()`` on the model, in place, when the trainer sets the model up (``configure_model``):
  inference commands that rebuild a task from its checkpoint run it eagerly. The first steps pay the compilation.
"""

from __future__ import annotations

from torch import nn

from vitkit.errors import ConfigError


def enable_grad_checkpointing(model: nn.Module) -> None:
    setter = getattr(model, "set_grad_checkpointing", None)
    if setter is None:
        raise ConfigError(f"grad_checkpointing: {type(model).__name__} has no set_grad_checkpointing(); vitkit's "
                          f"families and timm's models do. Turn grad_checkpointing off for this model")
    setter(True)


def compile_in_place(model: nn.Module) -> None:
    """``model.compile()`` once (state-dict keys unchanged, unlike wrapping in ``torch.compile``)."""
    if not getattr(model, "_vitkit_compiled", False):
        model.compile()
        model._vitkit_compiled = True
