"""Multi-scale deformable attention: grid_sample path == explicit per-point reference == Hugging Face's."""

import pytest
import torch

from vitkit.layers import masks
from vitkit.layers.deformable import MultiScaleDeformableAttention

SHAPES = [(6, 8), (3, 4), (2, 2)]
DIM, HEADS, POINTS = 32, 4, 3


def inputs(ref_dims=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = sum(h * w for h, w in SHAPES)
    query = torch.randn(2, 5, DIM, generator=g)
    value = torch.randn(2, n, DIM, generator=g)
    ref = torch.rand(2, 5, 1, ref_dims, generator=g)
    if ref_dims == 4:
        ref[..., 2:] = ref[..., 2:] * 0.8 + 0.1  # box sizes
    return query, ref, value


def randomised(module):
    """Random offsets and weights, large enough that points land off-grid and outside the map."""
    torch.manual_seed(3)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.5)
    return module


@pytest.mark.parametrize("ref_dims", [2, 4])
def test_fused_equals_explicit_reference(ref_dims):
    attn = randomised(MultiScaleDeformableAttention(DIM, HEADS, len(SHAPES), POINTS))
    query, ref, value = inputs(ref_dims)
    fused = attn(query, ref.expand(-1, -1, len(SHAPES), -1), value, SHAPES)
    attn.fused = False
    reference = attn(query, ref.expand(-1, -1, len(SHAPES), -1), value, SHAPES)
    assert (fused - reference).abs().max().item() <= 1e-5
    assert fused.abs().max() > 0.1  # the points read real values


def test_equals_hugging_face_with_copied_weights():
    from transformers import RTDetrConfig
    from transformers.models.rt_detr.modeling_rt_detr import RTDetrMultiscaleDeformableAttention

    config = RTDetrConfig(d_model=DIM, num_feature_levels=len(SHAPES))
    hf = RTDetrMultiscaleDeformableAttention(config, num_heads=HEADS, n_points=POINTS)
    ours = randomised(MultiScaleDeformableAttention(DIM, HEADS, len(SHAPES), POINTS))
    hf.load_state_dict(ours.state_dict())
    query, ref, value = inputs(4)
    shapes = torch.tensor(SHAPES)
    starts = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    with torch.no_grad():
        theirs, _ = hf(query, encoder_hidden_states=value, reference_points=ref, spatial_shapes=shapes,
                       spatial_shapes_list=SHAPES, level_start_index=starts)
        for fused in (True, False):
            ours.fused = fused
            assert (ours(query, ref, value, SHAPES) - theirs).abs().max().item() <= 1e-5


def test_masked_values_are_never_read():
    attn = randomised(MultiScaleDeformableAttention(DIM, HEADS, len(SHAPES), POINTS))
    query, ref, value = inputs(2)
    valid = torch.ones(2, value.shape[1], dtype=torch.bool)
    valid[1, 20:] = False
    out = attn(query, ref, value, SHAPES, mask=masks.key_padding(valid))
    changed = value.clone()
    changed[1, 20:] += 100.0
    assert torch.equal(out, attn(query, ref, changed, SHAPES, mask=masks.key_padding(valid)))
    assert not torch.equal(out, attn(query, ref, changed, SHAPES))


def test_shapes_must_fit_the_values():
    attn = MultiScaleDeformableAttention(DIM, HEADS, len(SHAPES), POINTS)
    query, ref, value = inputs(2)
    with pytest.raises(ValueError, match="must list 3 levels"):
        attn(query, ref, value[:, 1:], SHAPES)
