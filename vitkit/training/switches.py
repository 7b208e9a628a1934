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
  ``true`` uses torch's defaults (the Inductor backend, which generates C++ on the CPU); a mapping passes options,
  e.g. ``{backend: aot_eager}`` (graph capture without code generation: what the CPU tests use, as Inductor takes
  tens of seconds per model there).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from vitkit.errors import ConfigError


def enable_grad_checkpointing(model: nn.Module) -> None:
    setter = getattr(model, "set_grad_checkpointing", None)
    if setter is None:
        raise ConfigError(f"grad_checkpointing: {type(model).__name__} has no set_grad_checkpointing(); vitkit's "
                          f"families and timm's models do. Turn grad_checkpointing off for this model")
    setter(True)


def compile_in_place(model: nn.Module, options: bool | dict[str, Any] = True) -> None:
    """``model.compile(**options)`` once (state-dict keys unchanged, unlike wrapping in ``torch.compile``);
    ``options`` are ``torch.compile``'s keywords (``mode``, ``backend``, ``dynamic``, ...), ``True`` for none."""
    if getattr(model, "_vitkit_compiled", False):
        return
    options = {} if options is True else options
    if not isinstance(options, dict):
        raise ConfigError(f"compile={options!r}: use true, false, or a mapping of torch.compile options "
                          f"(e.g. {{mode: max-autotune}})")
    try:
        model.compile(**options)
    except TypeError as e:
        raise ConfigError(f"compile={options!r}: not options of torch.compile ({e})") from e
    model._vitkit_compiled = True
