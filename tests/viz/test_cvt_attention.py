"""CvT attention maps: token grids placed exactly on the image, captured weights resampled to pixels."""

import pytest
import torch

from vitkit import create_model
from vitkit.layers import capture_attention
from vitkit.viz.cvt_attention import cvt_attention_maps, cvt_grids
from vitkit.viz.token_grid import TokenGrid, image_grid, to_pixels


def test_grid_geometry():
    patches = image_grid(224, 224).conv(16, 16, 0)  # ViT: patch (0, 0) covers pixels 0..15, centred at 8.0
    assert patches == TokenGrid((14, 14), (8.0, 8.0), (16.0, 16.0))
    embed = image_grid(32, 32).conv(7, 4, 2)  # CvT stage 1: padding 2 of a 7-kernel shifts centres by +1
    assert embed.shape == (8, 8) and embed.centre(0, 1) == (1.5, 5.5)
    assert embed.conv(3, 2, 1) == TokenGrid((4, 4), (1.5, 1.5), (8.0, 8.0))


def test_to_pixels_is_exact_at_token_centres_and_identity_on_the_image_grid():
    values = torch.rand(2, 5, 4)
    assert torch.allclose(to_pixels(values, image_grid(5, 4), (5, 4)), values)
    grid = TokenGrid((3, 3), (1.5, 1.5), (4.0, 4.0))  # centres at pixels 1, 5, 9
    v = torch.rand(3, 3)
    px = to_pixels(v, grid, (12, 12))
    assert torch.allclose(px[1::4, 1::4], v)
    assert torch.allclose(px[0, 0], v[0, 0]) and torch.allclose(px[11, 11], v[2, 2])  # held beyond the edges


def test_cvt_grids_match_the_captured_attention_shapes():
    model = create_model("cvt_test").eval()
    x = torch.randn(1, 3, 45, 37)
    with torch.no_grad(), capture_attention(model) as store:
        model(x)
    for s, (grid, kv) in enumerate(cvt_grids(model, 45, 37)):
        P = model.stages[s].num_prefix_tokens
        nq, nk = store[f"stages.{s}.blocks.0.attn"][0].shape[-2:]
        assert (nq, nk) == (P + grid.shape[0] * grid.shape[1], P + kv.shape[0] * kv.shape[1])


def test_maps_carry_the_query_weights_to_the_key_centres():
    torch.manual_seed(0)
    model = create_model("cvt_test").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), capture_attention(model) as store:
        model(x)
    w0 = store["stages.0.blocks.0.attn"][0]  # (2, 1, 64, 16): 8×8 queries, 4×4 keys centred at pixels 1, 9, 17, 25
    out = cvt_attention_maps(model, x, stage=0, query=(2, 3))
    assert out.maps.shape == (2, 1, 32, 32) and out.class_token_share is None
    assert out.query_centre == (9.5, 13.5)
    assert torch.allclose(out.maps[:, :, 1::8, 1::8], w0[:, :, 2 * 8 + 3].unflatten(-1, (4, 4)), atol=1e-6)
    cls = cvt_attention_maps(model, x)  # last stage: the class token's attention
    w1 = store["stages.1.blocks.1.attn"][0]
    assert torch.allclose(cls.class_token_share, w1[:, :, 0, 0])
    assert cls.maps.shape == (2, 2, 32, 32) and cls.query_centre is None
    mean = cvt_attention_maps(model, x, stage=0)  # no class token in stage 0: mean over queries
    assert torch.allclose(mean.maps[:, :, 1::8, 1::8], w0.mean(2).unflatten(-1, (4, 4)), atol=1e-6)
    with pytest.raises(ValueError, match="outside stage 0's 8×8 grid"):
        cvt_attention_maps(model, x, stage=0, query=(8, 0))


def test_relevance_maps_through_the_shared_entry_point():
    from vitkit.viz.attention_maps import attention_maps

    for name, x in (("cvt_test", torch.randn(3, 3, 32, 32)), ("cvt_digits", torch.randn(3, 1, 8, 8))):
        model = create_model(name).train()
        maps = attention_maps(model, x)
        assert maps.shape == (3, *x.shape[-2:]) and model.training  # mode restored
        assert maps.amin() >= 0 and maps.amax() <= 1 and torch.allclose(maps.flatten(1).amax(1), torch.ones(3))
