"""DETR's layers: DecoderBlock == nn.TransformerDecoderLayer, masked sine positions == Hugging Face's, frozen and
folded BatchNorm == BatchNorm2d in eval mode."""

import copy

import pytest
import torch
from torch import nn

from vitkit.layers import DecoderBlock, FrozenBatchNorm2d, fold_frozen_batch_norm, freeze_batch_norm, masks
from vitkit.layers.pos_embed import masked_sine_2d


def copy_into_torch_decoder(block: DecoderBlock, ref: nn.TransformerDecoderLayer) -> None:
    with torch.no_grad():
        for ours, theirs in ((block.attn, ref.self_attn), (block.cross_attn, ref.multihead_attn)):
            theirs.in_proj_weight.copy_(ours.qkv.weight)
            theirs.in_proj_bias.copy_(ours.qkv.bias)
            theirs.out_proj.load_state_dict(ours.proj.state_dict())
        ref.linear1.load_state_dict(block.mlp.fc1.state_dict())
        ref.linear2.load_state_dict(block.mlp.fc2.state_dict())
        for i in (1, 2, 3):
            getattr(ref, f"norm{i}").load_state_dict(getattr(block, f"norm{i}").state_dict())


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_equals_torch_decoder_layer(norm_first):
    torch.manual_seed(0)
    block = DecoderBlock(16, 4, mlp_ratio=2.0, act_layer=nn.ReLU, norm_first=norm_first).eval()
    ref = nn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first).eval()
    copy_into_torch_decoder(block, ref)
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    valid = torch.ones(2, 7, dtype=torch.bool)
    valid[1, 4:] = False
    out = block(x, memory, memory_mask=masks.key_padding(valid))
    expected = ref(x, memory, memory_key_padding_mask=~valid)  # PyTorch's convention: True = padding
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_decoder_block_adds_positions_to_queries_and_keys_not_values():
    torch.manual_seed(0)
    block = DecoderBlock(16, 2).eval()
    x, memory = torch.randn(2, 3, 16), torch.randn(2, 6, 16)
    qpos, mpos = torch.randn(1, 3, 16), torch.randn(2, 6, 16)
    a = block.norm1(x + block.attn(x + qpos, x + qpos, x))
    b = block.norm2(a + block.cross_attn(a + qpos, memory + mpos, memory))
    expected = block.norm3(b + block.mlp(b))
    torch.testing.assert_close(block(x, memory, query_pos=qpos, memory_pos=mpos), expected)


def test_masked_sine_equals_hugging_face():
    from transformers.models.detr.modeling_detr import DetrSinePositionEmbedding

    valid = torch.ones(2, 5, 7, dtype=torch.bool)
    valid[1, 3:] = False
    valid[1, :, 4:] = False
    ours = masked_sine_2d(valid, 64)  # (B, h·w, C)
    ref = DetrSinePositionEmbedding(32, normalize=True)((2, 64, 5, 7), "cpu", torch.float32, mask=valid)
    torch.testing.assert_close(ours, ref.flatten(2).transpose(1, 2), atol=1e-5, rtol=1e-5)
    # Padding does not move the encoding of real pixels: image 1's 3×4 region spans the same range as a 3×4 image.
    alone = masked_sine_2d(torch.ones(1, 3, 4, dtype=torch.bool), 64).reshape(3, 4, 64)
    torch.testing.assert_close(ours[1].reshape(5, 7, 64)[:3, :4], alone)
    with pytest.raises(ValueError, match="divisible by 4"):
        masked_sine_2d(valid, 30)
    with pytest.raises(TypeError, match="boolean"):
        masked_sine_2d(valid.float(), 64)


def random_bn(channels: int, seed: int, cls=nn.BatchNorm2d) -> nn.BatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    bn = cls(channels)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(channels, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(channels, generator=g))
        bn.running_mean.copy_(torch.randn(channels, generator=g))
        bn.running_var.copy_(torch.rand(channels, generator=g) + 0.1)
    return bn.eval()


def test_frozen_bn_equals_batchnorm_eval_and_loads_bn_checkpoints():
    bn = random_bn(6, 0)
    frozen = freeze_batch_norm(copy.deepcopy(bn))
    x = torch.randn(2, 6, 4, 4)
    assert isinstance(frozen, FrozenBatchNorm2d) and not list(frozen.parameters())
    torch.testing.assert_close(frozen(x), bn(x))
    fresh = FrozenBatchNorm2d(6)
    fresh.load_state_dict(bn.state_dict())  # num_batches_tracked is dropped, not an error
    torch.testing.assert_close(fresh(x), bn(x))


def test_freeze_keeps_timm_fused_activation():
    from timm.layers import BatchNormAct2d

    bn = random_bn(4, 1, BatchNormAct2d)
    frozen = freeze_batch_norm(nn.Sequential(copy.deepcopy(bn)))[0]
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(frozen(x), bn(x))
    assert (frozen(x) >= 0).all()  # the ReLU survived


def test_folding_into_convolutions_changes_nothing_but_the_cost():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), random_bn(8, 2), nn.ReLU(), nn.Conv2d(8, 8, 3, bias=False)),
        random_bn(8, 3),
        nn.ReLU(),
        nn.Conv2d(8, 4, 1),
        nn.Identity(),
        random_bn(4, 4),  # not directly after a convolution: must stay unfolded
    )
    frozen = freeze_batch_norm(net)
    folded = copy.deepcopy(frozen)
    assert fold_frozen_batch_norm(folded) == 2
    norms = [m for m in folded.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert [m.folded for m in norms] == [True, True, False]
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    torch.testing.assert_close(folded(x), frozen(x), atol=1e-5, rtol=1e-5)
    assert folded.state_dict().keys() == frozen.state_dict().keys()
    folded(x).sum().backward()
    assert folded[0][0].weight.grad is not None
