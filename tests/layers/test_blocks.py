import pytest
import torch

from vitkit.layers import Block, DropPath, PatchEmbed, drop_path_rates, resample_pos_embed, sincos_2d


def test_drop_path_scales_kept_samples_and_is_identity_in_eval():
    torch.manual_seed(0)
    dp = DropPath(0.5)
    x = torch.ones(10_000, 3)
    y = dp(x)
    kept = y[:, 0] != 0
    assert torch.all(y[kept] == 2.0)  # 1 / (1 - p)
    assert 0.45 < kept.float().mean() < 0.55
    assert torch.equal(dp.eval()(x), x)
    assert drop_path_rates(0.1, 3) == pytest.approx([0.0, 0.05, 0.1])


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_residual_structure(norm_first):
    torch.manual_seed(0)
    block = Block(16, 2, norm_first=norm_first).eval()
    x = torch.randn(2, 5, 16)
    h = block.norm1(x) if norm_first else x
    a = x + block.attn(h)
    if norm_first:
        expected = a + block.mlp(block.norm2(a))
    else:
        a = block.norm1(a)
        expected = block.norm2(a + block.mlp(a))
    assert torch.allclose(block(x), expected, atol=1e-6)


def test_block_adds_positions_to_queries_and_keys_only():
    torch.manual_seed(0)
    block = Block(16, 2, norm_first=False).eval()
    x, pos = torch.randn(2, 5, 16), torch.randn(1, 5, 16)
    a = block.norm1(x + block.attn(x + pos, x + pos, x))
    assert torch.allclose(block(x, pos=pos), block.norm2(a + block.mlp(a)), atol=1e-6)


def test_patch_embed_shapes_and_error():
    pe = PatchEmbed(4, 3, 8)
    assert pe(torch.randn(2, 3, 16, 12)).shape == (2, 12, 8)
    with pytest.raises(ValueError, match="not divisible by the patch size 4"):
        pe(torch.randn(1, 3, 10, 12))


def test_sincos_2d_and_resample():
    table = sincos_2d(3, 4, 8)
    assert table.shape == (12, 8)
    # position (row 0, col 1): column half encodes col=1, row half encodes row=0 → sin 0, cos 1
    assert torch.allclose(table[1, 4:6], torch.zeros(2)) and torch.allclose(table[1, 6:], torch.ones(2))
    pos = torch.randn(1, 1 + 16, 8)
    out = resample_pos_embed(pos, (6, 2), (4, 4))
    assert out.shape == (1, 13, 8) and torch.equal(out[:, :1], pos[:, :1])
    assert resample_pos_embed(pos, (4, 4)) is pos
    with pytest.raises(ValueError, match="does not match"):
        resample_pos_embed(pos, (2, 2), (3, 3))
