import pytest
import torch

from vitkit import create_model
from vitkit.models.sampling import sample


def _model(attention="local_1d", **kw):
    torch.manual_seed(0)
    return create_model("image_transformer_test", attention=attention, **kw).eval()


def _gen(seed=5):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("attention", ["local_1d", "local_2d", "global"])
def test_cached_sampling_equals_uncached_recomputation(attention):
    model = _model(attention)
    cached = sample(model, 3, temperature=1.3, generator=_gen())
    uncached = sample(model, 3, temperature=1.3, generator=_gen(), use_cache=False)
    assert cached.dtype == torch.uint8 and cached.shape == (3, 3, 4, 4)
    assert torch.equal(cached, uncached)
    assert not torch.equal(cached, sample(model, 3, temperature=1.3, generator=_gen(6)))  # the seed matters


@pytest.mark.parametrize("attention", ["local_1d", "local_2d"])
def test_conditional_completion_cached_equals_uncached(attention):
    model = _model(attention, num_classes=3)
    known = torch.randint(0, 256, (1, 3, 4, 4), generator=_gen(1), dtype=torch.uint8)
    kw = {"y": torch.tensor([0, 1, 2, 1]), "known": known, "rows": 2}
    cached = sample(model, 4, generator=_gen(), **kw)
    assert torch.equal(cached, sample(model, 4, generator=_gen(), use_cache=False, **kw))
    assert torch.equal(cached[:, :, :2], known[:, :, :2].expand(4, -1, -1, -1))  # the given rows are kept
    assert not torch.equal(cached[:, :, 2:], known[:, :, 2:].expand(4, -1, -1, -1))


def test_sample_follows_the_model_distribution():
    """A model whose head always favours one intensity produces it; temperature spreads the samples."""
    model = _model()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[77] = 8.0
    assert (sample(model, 2, temperature=0.5, generator=_gen()) == 77).all()
    hot = sample(model, 2, temperature=50.0, generator=_gen())
    assert (hot != 77).float().mean() > 0.5


def test_sampling_errors():
    model = _model()
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        sample(model, 1, temperature=0)
    with pytest.raises(ValueError, match=r"rows=4: must lie in \[0, 4\)"):
        sample(model, 1, known=torch.zeros(1, 3, 4, 4, dtype=torch.uint8), rows=4)
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 4, 4\).*got \(1, 1, 4, 4\)"):
        sample(model, 1, known=torch.zeros(1, 1, 4, 4, dtype=torch.uint8), rows=1)
    with pytest.raises(ValueError, match="unconditional"):
        sample(model, 1, y=0)
    with pytest.raises(ValueError, match="class-conditional"):
        sample(_model(num_classes=3), 1)
    with pytest.raises(ValueError, match=r"class label 3 outside \[0, 3\)"):
        sample(_model(num_classes=3), 1, y=3)
