import pytest
import torch
from torch import nn

from vitkit.layers import Attention, KVCache, capture_attention, masks, set_fused_attention


def _pair(dim=32, heads=4, **kw):
    torch.manual_seed(0)
    return Attention(dim, heads, **kw).eval()


def _run_both(attn, *args, **kw):
    attn.fused = True
    fused = attn(*args, **kw)
    attn.fused = False
    ref = attn(*args, **kw)
    return fused, ref


@pytest.mark.parametrize("case", ["self", "cross", "shared_qk", "key_padding", "full_mask", "causal", "causal_mask"])
def test_fused_equals_reference(case):
    attn = _pair()
    g = torch.Generator().manual_seed(1)
    x, mem = torch.randn(3, 9, 32, generator=g), torch.randn(3, 5, 32, generator=g)
    kw = {}
    if case == "self":
        args = (x,)
    elif case == "cross":
        args = (x, mem, mem)
    elif case == "shared_qk":
        args = (x, x, torch.randn(3, 9, 32, generator=g))
    elif case == "key_padding":
        args, kw = (x, mem, mem), {"mask": masks.key_padding(torch.rand(3, 5, generator=g) > 0.3)}
    elif case == "full_mask":
        args, kw = (x, mem, mem), {"mask": torch.rand(3, 4, 9, 5, generator=g) > 0.5}
    elif case == "causal":
        args, kw = (x,), {"is_causal": True}
    else:
        args, kw = (x,), {"is_causal": True, "mask": masks.key_padding(torch.rand(3, 9, generator=g) > 0.2)}
    fused, ref = _run_both(attn, *args, **kw)
    assert (fused - ref).abs().max() <= 1e-5


def test_matches_torch_multihead_attention():
    torch.manual_seed(0)
    dim, heads = 32, 4
    mha = nn.MultiheadAttention(dim, heads, batch_first=True).eval()
    attn = Attention(dim, heads).eval()
    attn.qkv.weight.data.copy_(mha.in_proj_weight)
    attn.qkv.bias.data.copy_(mha.in_proj_bias)
    attn.proj.weight.data.copy_(mha.out_proj.weight)
    attn.proj.bias.data.copy_(mha.out_proj.bias)
    q, kv = torch.randn(2, 6, dim), torch.randn(2, 11, dim)
    padding = torch.zeros(2, 11, dtype=torch.bool)
    padding[1, 7:] = True  # MHA convention: True = padding
    expected, expected_w = mha(q, kv, kv, key_padding_mask=padding, average_attn_weights=False)
    for fused in (True, False):
        attn.fused = fused
        out = attn(q, kv, kv, mask=masks.from_padding(padding))
        assert (out - expected).abs().max() <= 1e-5
    out, w = attn(q, kv, kv, mask=masks.from_padding(padding), need_weights=True)
    assert (w - expected_w).abs().max() <= 1e-6
    # self-attention through the single fused projection
    expected, _ = mha(q, q, q)
    assert (attn(q) - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("fused", [True, False])
def test_fully_masked_row_is_zero_not_nan(fused):
    attn = _pair(fused=fused)
    x = torch.randn(2, 4, 32, requires_grad=True)
    mask = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    mask[:, :, 2] = False  # query 2 may attend to nothing
    out = attn(x, mask=mask)
    assert torch.isfinite(out).all()
    # the row's attention output is zero, so what remains is the output projection's bias
    assert torch.allclose(out[:, 2], attn.proj.bias.expand(2, -1))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in attn.parameters())


def test_weights_returned_on_request_and_sum_to_one():
    attn = _pair()
    out, w = attn(torch.randn(2, 5, 32), torch.randn(2, 7, 32), need_weights=True)
    assert out.shape == (2, 5, 32) and w.shape == (2, 4, 5, 7)
    assert torch.allclose(w.sum(-1), torch.ones(2, 4, 5))


def test_causal_mask_is_bottom_right_aligned():
    m = masks.causal(2, 4)
    assert m.tolist() == [[True, True, True, False], [True, True, True, True]]
    assert masks.causal(3).tolist() == torch.ones(3, 3).tril().bool().tolist()
    with pytest.raises(ValueError, match="at least as many keys"):
        masks.causal(4, 2)


def test_kv_cache_decoding_equals_full_causal_pass():
    attn = _pair()
    x = torch.randn(2, 7, 32)
    full = attn(x, is_causal=True)
    for fused in (True, False):
        attn.fused = fused
        cache = KVCache()
        steps = [attn(x[:, :3], is_causal=True, cache=cache)]  # a prompt, then one token at a time
        steps += [attn(x[:, t : t + 1], is_causal=True, cache=cache) for t in range(3, 7)]
        assert (torch.cat(steps, dim=1) - full).abs().max() <= 1e-5


def test_kv_cache_window_keeps_only_recent_positions():
    cache = KVCache(window=3)
    for t in range(5):
        k = torch.full((1, 1, 1, 2), float(t))
        cache.update(k, k)
    assert len(cache) == 3 and cache.offset == 2
    assert cache.k[0, 0, :, 0].tolist() == [2.0, 3.0, 4.0]


def test_capture_and_set_fused():
    model = nn.Sequential(Attention(16, 2), Attention(16, 2))
    with capture_attention(model) as maps:
        model(torch.randn(1, 3, 16))
    assert [len(v) for v in maps.values()] == [1, 1]
    assert maps["0"][0].shape == (1, 2, 3, 3)
    assert all(m.record is None for m in model)
    set_fused_attention(model, False)
    assert not any(m.fused for m in model)


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        Attention(30, 4)
    with pytest.raises(TypeError, match="boolean"):
        masks.key_padding(torch.ones(2, 3))
