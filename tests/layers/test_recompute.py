"""Mlp(recompute_act=True): same outputs and gradients as the plain Mlp, less memory kept for backward."""

import pytest
import torch
from torch import nn

from vitkit.layers import Mlp


def _pair(**kw):
    torch.manual_seed(0)
    plain, lean = Mlp(16, 64, **kw), Mlp(16, 64, recompute_act=True, **kw)
    lean.load_state_dict(plain.state_dict())
    return plain, lean


@pytest.mark.parametrize("act", [nn.GELU, nn.SiLU])
def test_same_outputs_and_gradients(act):
    plain, lean = _pair(act_layer=act)
    x = torch.randn(3, 5, 16)
    xs = [x.clone().requires_grad_() for _ in range(2)]
    outs = [m(xi) for m, xi in zip((plain, lean), xs, strict=True)]
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    g = torch.randn_like(outs[0])
    for out in outs:
        out.backward(g)
    assert torch.allclose(xs[0].grad, xs[1].grad, atol=1e-6)
    for (name, p), q in zip(plain.named_parameters(), lean.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), name


def test_keeps_less_for_backward():
    def saved_bytes(model):
        sizes = {}

        def pack(t):
            sizes[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.randn(8, 100, 16, requires_grad=True))
        return sum(sizes.values())

    plain, lean = _pair()
    hidden = 8 * 100 * 64 * 4  # one (B, N, 4C) float32 tensor
    assert saved_bytes(plain) - saved_bytes(lean) == hidden


def test_bf16_autocast_and_frozen_weights():
    _, lean = _pair()
    lean.fc2.requires_grad_(False)
    x = torch.randn(2, 3, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lean(x)
    out.float().sum().backward()
    assert x.grad is not None and lean.fc1.weight.grad is not None and lean.fc2.weight.grad is None


def test_dropout_between_falls_back_to_the_plain_path():
    _, lean = _pair(drop=0.5)
    lean.train()
    x = torch.randn(4, 16, requires_grad=True)
    lean(x).sum().backward()  # a dropout mask must be kept: recomputation is skipped, training still works
    assert x.grad is not None
