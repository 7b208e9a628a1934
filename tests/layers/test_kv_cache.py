import torch

from vitkit.layers import KVCache


def test_buffered_cache_matches_concatenation_across_reallocations():
    """Many single steps and chunks, with a window and prefix drops: the same keys as plain concatenation."""
    cache, held, offset = KVCache(window=7), torch.empty(1, 2, 0, 3), 0
    g = torch.Generator().manual_seed(0)
    for step, n in enumerate([1] * 40 + [3, 5, 1, 2] * 5):
        k = torch.randn(1, 2, n, 3, generator=g)
        k_all, v_all = cache.update(k, 2 * k)
        held = torch.cat([held, k], dim=2)
        assert torch.equal(k_all, held) and torch.equal(v_all, 2 * held)  # everything held plus the new keys
        if held.shape[2] > 7:
            offset += held.shape[2] - 7
            held = held[:, :, -7:]
        if step % 9 == 8:
            cache.drop_before(offset + 2)
            offset, held = offset + 2, held[:, :, 2:]
        assert cache.offset == offset and len(cache) == held.shape[2] and torch.equal(cache.k, held)


def test_cache_under_autograd_keeps_earlier_graphs_valid():
    cache = KVCache()
    x = torch.randn(1, 1, 1, 2, requires_grad=True)
    first, _ = cache.update(x * 2, x * 2)
    second, _ = cache.update(x * 3, x * 3)
    (first.sum() + second.sum()).backward()  # no in-place write invalidated `first`
    assert x.grad.tolist() == [[[[7.0, 7.0]]]]
