"""An exponential moving average (EMA) of a task's weights, for every task (``TaskShell.init_ema``).

After optimiser step ``t`` every floating-point tensor of the model's state (parameters and buffers) is averaged as
``ema ← d_t · ema + (1 − d_t) · weight`` (integer buffers are copied), through ``timm.utils.ModelEmaV3``. The decay
``d_t`` is ``ema_decay``, ramped up early on according to ``ema_warmup``:

- ``True``: timm's ramp ``d_t = min(ema_decay, 1 − t^(−2/3))`` (``d_1 = 0``: the first step copies),
  the classification recipe's (DeiT);
- an integer ``N``: RT-DETR's ramp (Zhao et al. 2024, its official ``ModelEMA``) ``d_t = ema_decay · (1 − exp(−t /
  N))``, e.g. ``0.9999`` with ``N = 2000``;
- ``False``: ``d_t = ema_decay`` from the second step (timm's ``d_1 = 0`` copies the weights at the first).

The EMA copy lives outside the task's module tree (Lightning checkpoints keep plain weights in ``state_dict``); the
task saves it under the checkpoint's ``"model_ema"`` entry, and ``load_task(path, ema=True)`` (``--ema`` of ``vitkit
predict``, ``detect`` and ``export``) puts those weights in the model.
"""

from __future__ import annotations

import math

from torch import nn

from vitkit.errors import ConfigError


def build_ema(model: nn.Module, decay: float | None, *, warmup: bool | int = True):
    """An EMA (``timm.utils.ModelEmaV3``, a frozen copy) of ``model``, or ``None`` when ``decay`` is ``None``."""
    if decay is None:
        return None
    if not 0.0 < decay < 1.0:
        raise ConfigError(f"ema_decay={decay} must lie in (0, 1)",
                          "use e.g. 0.9998 (RT-DETR: 0.9999), or leave it unset to disable the EMA")
    if not isinstance(warmup, bool) and (not isinstance(warmup, int) or warmup < 1):
        raise ConfigError(f"ema_warmup={warmup!r}", "use true (timm's ramp), false, or a number of steps (RT-DETR: "
                          "2000)")
    from timm.utils import ModelEmaV3

    class StepsWarmupEma(ModelEmaV3):
        """``ModelEmaV3`` whose decay ramps as ``decay · (1 − exp(−step / warmup_steps))``."""

        def get_decay(self, step: int | None = None) -> float:
            if step is None:
                return self.decay
            return self.decay * (1.0 - math.exp(-max(step, 0) / warmup))

    if isinstance(warmup, bool):
        return ModelEmaV3(model, decay=decay, use_warmup=warmup)
    return StepsWarmupEma(model, decay=decay)
