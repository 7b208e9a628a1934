import pytest
import torch

from vitkit.layers import Attention, capture_attention, masks
from vitkit.layers.local_attention import LocalLayout, block_raster_order


def _brute_1d(n, block, flange):
    m = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        start = (i // block) * block - flange
        for j in range(n):
            m[i, j] = max(start, 0) <= j <= i
    return m


def _brute_2d(grid, block, flange):
    """Generation order and mask written out with loops, independently of masks.block_raster_coords."""
    (gh, gw), (bh, bw), (fh, fw) = grid, block, flange
    coords = []  # generation position -> (row, col, block corner)
    for r0 in range(0, gh, bh):
        for c0 in range(0, gw, bw):
            coords += [(r, c, r0, c0) for r in range(r0, r0 + bh) for c in range(c0, c0 + bw)]
    n = len(coords)
    m = torch.zeros(n, n, dtype=torch.bool)
    for i, (_, _, r0, c0) in enumerate(coords):
        for j, (r, c, _, _) in enumerate(coords[: i + 1]):
            m[i, j] = r0 - fh <= r < r0 + bh and c0 - fw <= c < c0 + bw + fw
    return m, torch.tensor([r * gw + c for r, c, _, _ in coords])


@pytest.mark.parametrize(("n", "block", "flange"), [(24, 4, 4), (24, 6, 0), (24, 4, 9), (30, 5, 100)])
def test_local_1d_mask_matches_definition(n, block, flange):
    assert torch.equal(masks.local_1d(n, block_size=block, flange=flange), _brute_1d(n, block, flange))


@pytest.mark.parametrize(("grid", "block", "flange"), [((4, 12), (2, 6), (1, 3)), ((6, 8), (3, 4), (3, 4)),
                                                       ((4, 4), (2, 2), (0, 0)), ((4, 6), (1, 3), (2, 1))])
def test_local_2d_mask_and_order_match_definition(grid, block, flange):
    expected, order = _brute_2d(grid, block, flange)
    assert torch.equal(block_raster_order(grid, block), order)
    assert torch.equal(masks.local_2d(grid[0] * grid[1], grid=grid, block=block, flange=flange), expected)


def test_negative_key_positions_are_padding():
    m = masks.local_1d(torch.tensor([0, 1]), torch.tensor([-1, 0, 1]), block_size=2, flange=2)
    assert torch.equal(m, torch.tensor([[False, True, False], [False, True, True]]))


LAYOUTS = {
    "1d": lambda: LocalLayout.one_d(48, 8, 8),
    "1d_long_flange": lambda: LocalLayout.one_d(48, 6, 20),
    "2d": lambda: LocalLayout.two_d((4, 12), (2, 6), (1, 3)),
    "2d_tall_flange": lambda: LocalLayout.two_d((6, 8), (2, 4), (4, 2)),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
@pytest.mark.parametrize("fused", [True, False])
def test_blockwise_equals_dense_masked_attention(name, fused):
    layout = LAYOUTS[name]()
    torch.manual_seed(0)
    attn = Attention(16, 2, fused=fused).eval()
    n = layout.key_pos.shape[0] * layout.block_size
    x = torch.randn(3, n, 16)
    for length in (n, 2 * layout.block_size):  # whole sequence and a prefix of two blocks
        blockwise = layout(attn, x[:, :length])
        dense = attn(x[:, :length], mask=layout.dense_mask(length))
        assert (blockwise - dense).abs().max() < 1e-5


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_window_is_the_longest_look_back(name):
    layout = LAYOUTS[name]()
    n = layout.key_pos.shape[0] * layout.block_size
    dense = layout.dense_mask(n)
    first_visible = dense.float().argmax(dim=1)  # earliest key each query sees
    assert layout.window == int((torch.arange(n) - first_visible).max()) + 1
    for t in range(n):  # the step mask over a cache of the last `window` positions reproduces the dense row
        first = max(0, t + 1 - layout.window)
        assert torch.equal(layout.step_mask(t, first)[0], dense[t, first: t + 1])
        assert not dense[t, :first].any()


def test_blockwise_never_builds_a_full_score_matrix():
    layout = LocalLayout.one_d(64, 8, 16)
    attn = Attention(16, 2).eval()
    with capture_attention(attn) as store:
        layout(attn, torch.randn(2, 64, 16))
    assert store[""][0].shape == (2 * 8, 2, 8, 24)  # (B·nb, nh, bs, M), not (B, nh, 64, 64)


def test_layout_errors():
    with pytest.raises(ValueError, match="does not divide"):
        LocalLayout.one_d(50, 8, 8)
    with pytest.raises(ValueError, match="does not tile"):
        LocalLayout.two_d((4, 12), (3, 6), (1, 1))
    with pytest.raises(ValueError, match="does not fit"):
        LocalLayout.one_d(16, 8, 8)(Attention(16, 2), torch.randn(1, 12, 16))


def test_one_d_layout_is_contiguous_and_two_d_is_not():
    assert LAYOUTS["1d"]().contiguous and LAYOUTS["1d_long_flange"]().contiguous
    assert not LAYOUTS["2d"]().contiguous
    layout = LAYOUTS["1d"]()
    dense = layout.dense_mask(48)
    for t in range(48):
        assert dense[t, layout.first_visible[t]: t + 1].all() and not dense[t, : layout.first_visible[t]].any()
