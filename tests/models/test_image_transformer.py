import pytest
import torch
import torch.nn.functional as F

from vitkit import create_model
from vitkit.models import ImageTransformerConfig, get_preset, list_models

VARIANTS = ["local_1d", "local_2d", "global"]


def _model(attention="local_1d", **kw):
    torch.manual_seed(0)
    return create_model("image_transformer_test", attention=attention, **kw).eval()


def _images(b=2, seed=1):
    return torch.randint(0, 256, (b, 3, 4, 4), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_presets_registered():
    names = set(list_models("image_transformer*"))
    assert {"image_transformer_cifar10", "image_transformer_imagenet32", "image_transformer_digits",
            "image_transformer_test"} <= names
    cifar = get_preset("image_transformer_cifar10").config
    assert cifar.seq_len == 3072 and (cifar.block_size, cifar.memory_flange) == (256, 256)  # memory of 512


@pytest.mark.parametrize("attention", VARIANTS)
def test_output_shape_and_layout_round_trip(attention):
    model, x = _model(attention), _images()
    assert model(x).shape == (2, 256, 3, 4, 4)
    assert torch.equal(model.from_sequence(model.to_sequence(x)), x.long())


@pytest.mark.parametrize("attention", VARIANTS)
def test_causality(attention):
    """Perturbing sub-pixel t leaves the predicted distribution at every position <= t unchanged."""
    model = _model(attention)
    seq = model.to_sequence(_images(1))
    base = model.forward_sequence(seq)
    for t in (0, 7, 8, 30, 46):  # first, block edges, middle, last but one
        changed = seq.clone()
        changed[0, t] = (changed[0, t] + 128) % 256
        out = model.forward_sequence(changed)
        assert (out[:, : t + 1] - base[:, : t + 1]).abs().max() < 1e-6, t
        assert (out[:, t + 1] - base[:, t + 1]).abs().max() > 1e-4, t  # the next position does see it


@pytest.mark.parametrize("attention", ["local_1d", "local_2d"])
def test_blockwise_model_equals_explicitly_masked_model(attention):
    model = _model(attention)
    seq = model.to_sequence(_images())
    blockwise = model.forward_sequence(seq)
    dense = model.local.dense_mask(model.seq_len)
    model._attend = lambda attn, h: attn(h, mask=dense)  # whole-sequence attention with the same pattern
    assert (model.forward_sequence(seq) - blockwise).abs().max() < 1e-5


def test_local_with_unbounded_memory_equals_global():
    local = _model("local_1d", memory_flange=48)  # every earlier position is in memory: plain causal attention
    full = _model("global")
    full.load_state_dict(local.state_dict())
    x = _images()
    assert (local(x) - full(x)).abs().max() < 1e-5


@pytest.mark.parametrize("attention", VARIANTS)
@pytest.mark.parametrize("conditional", [False, True])
def test_cached_steps_equal_full_forward(attention, conditional):
    model = _model(attention, num_classes=3 if conditional else 0)
    y = torch.tensor([2, 0]) if conditional else None
    seq = model.to_sequence(_images())
    full = model.forward_sequence(seq, y)
    caches = model.init_caches()
    with torch.no_grad():
        steps = torch.stack([model.step(seq[:, max(t - 1, 0)], t, caches, y) for t in range(model.seq_len)], 1)
    assert (steps - full).abs().max() < 1e-5
    if attention != "global":
        assert max(len(c) for c in caches) <= model.local.window  # the cache never holds more than the window


def test_class_conditioning_changes_predictions():
    model = _model(num_classes=3)
    seq = model.to_sequence(_images(1))
    a, b = model.forward_sequence(seq, torch.tensor([0])), model.forward_sequence(seq, torch.tensor([1]))
    assert (a - b).abs().max() > 1e-4


def test_overfits_one_batch():
    model = _model().train()
    x = _images(4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(model(x), x.long())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 5.0 and losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(("overrides", "match"), [
    ({"block_size": 10}, "block_size=10 must divide the sequence length H·W·C = 48"),
    ({"attention": "local_2d", "block_shape": (3, 6)}, r"block_shape=\(3, 6\) must tile the 4×12 grid"),
    ({"attention": "local_2d", "block_shape": (2, 4)}, "multiple of in_chans=3"),
    ({"attention": "axial"}, "choose 'local_1d', 'local_2d' or 'global'"),
    ({"dim": 31}, "divisible by num_heads"),
])
def test_config_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        create_model("image_transformer_test", **overrides)


def test_input_errors():
    model = _model()
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 4, 4\).*got \(2, 1, 4, 4\)"):
        model(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(TypeError, match="not whole numbers"):
        model(torch.rand(2, 3, 4, 4))  # normalised images
    assert model(torch.zeros(2, 3, 4, 4)).shape == (2, 256, 3, 4, 4)  # whole-number floats are intensities
    with pytest.raises(ValueError, match=r"\[0, 255\], found \[0, 300\]"):
        model(torch.zeros(1, 3, 4, 4, dtype=torch.long).index_fill_(3, torch.tensor([1]), 300))
    with pytest.raises(ValueError, match="unconditional"):
        model(_images(), torch.tensor([0, 1]))
    conditional = _model(num_classes=3)
    with pytest.raises(ValueError, match=r"class-conditional: give labels y of shape \(2,\) in \[0, 3\)"):
        conditional(_images())
    with pytest.raises(ValueError, match="class-conditional"):
        conditional(_images(), torch.tensor([0, 5]))


def test_config_from_yaml_lists():
    cfg = ImageTransformerConfig(img_size=4, attention="local_2d", block_shape=[2, 6], flange_shape=[1, 3])
    assert cfg.block_shape == (2, 6) and cfg.flange_shape == (1, 3)


@pytest.mark.parametrize("attention", VARIANTS)
def test_builds_on_the_meta_device(attention):
    """`vitkit models` counts parameters on the meta device; the layout tables stay real CPU tensors."""
    with torch.device("meta"):
        model = create_model("image_transformer_test", attention=attention)
    assert sum(p.numel() for p in model.parameters()) > 0 and model.order.device.type == "cpu"
