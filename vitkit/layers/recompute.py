"""``linear(act(h))`` that keeps only ``h`` for the backward pass and recomputes ``act(h)`` there.

In a Transformer MLP the two hidden tensors (``fc1``'s output and the activation's output, each 4× the token
width) are the largest activations kept for backward. Autograd keeps both: the activation needs its input, the
linear its input. Recomputing the activation (an elementwise op, cheap) from ``h`` in the backward pass keeps one
of them and gives the same gradients; the linear's matmul is not recomputed (unlike ``torch.utils.checkpoint``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


class _ActLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, bias: Tensor | None, act: Callable[[Tensor], Tensor]) -> Tensor:
        ctx.act = act
        ctx.bias_dtype = None if bias is None else bias.dtype
        ctx.save_for_backward(h, weight)
        return F.linear(act(h), weight, bias)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        h, weight = ctx.saved_tensors
        with torch.enable_grad():
            h_ = h.detach().requires_grad_()
            a = ctx.act(h_)  # recomputed: (..., hidden)
        # Under autocast the forward ran in low precision while the weight is float32: match dtypes explicitly.
        g = grad_out.flatten(0, -2)  # (M, out)
        grad_weight = grad_bias = None
        if ctx.needs_input_grad[1]:
            grad_weight = (g.t() @ a.detach().flatten(0, -2).to(g.dtype)).to(weight.dtype)  # (out, hidden)
        if ctx.needs_input_grad[2]:
            grad_bias = g.sum(0).to(ctx.bias_dtype)
        grad_a = grad_out @ weight.to(grad_out.dtype)  # (..., hidden)
        (grad_h,) = torch.autograd.grad(a, h_, grad_a.to(a.dtype))
        return grad_h, grad_weight, grad_bias, None


def act_linear(h: Tensor, act: Callable[[Tensor], Tensor], linear: torch.nn.Linear) -> Tensor:
    """``linear(act(h))``, storing only ``h`` for backward when gradients are being recorded.

    ``act`` must be elementwise and without parameters (GELU, QuickGELU, ReLU, SiLU).
    """
    if not torch.is_grad_enabled():
        return linear(act(h))
    return _ActLinear.apply(h, linear.weight, linear.bias, act)
