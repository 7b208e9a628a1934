"""vitkit's classifiers through timm's own API: `timm.create_model("vitkit_<preset>")` for every ViT and CvT preset,
with a pretrained_cfg that timm's data config resolution reads, timm's keyword vocabulary, its optimiser factory
(layer decay through group_matcher) and `pretrained=True` through vitkit's weights table (offline cache)."""

import pytest
import timm
import torch
from timm.data import resolve_data_config, resolve_model_data_config
from timm.optim import create_optimizer_v2

import vitkit  # noqa: F401  (registers the vitkit_ models in timm)
from tests.hub_cache import offline_hub_cache
from vitkit import CvT, VisionTransformer, create_model
from vitkit.models import get_preset, list_models
from vitkit.weights.hub import PRETRAINED


def test_every_vit_and_cvt_preset_is_a_timm_model():
    expected = {f"vitkit_{n}" for n in list_models() if get_preset(n).model_cls in (VisionTransformer, CvT)}
    assert expected and set(timm.list_models("vitkit_*")) == expected


def test_vitkit_cvt_13_has_cvt_13s_parameters_and_preprocessing():
    model = timm.create_model("vitkit_cvt_13")
    ref = create_model("cvt_13")
    assert isinstance(model, CvT) and model.config == ref.config
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    config = resolve_model_data_config(model)
    assert config == {"input_size": (3, 224, 224), "interpolation": "bicubic", "mean": (0.485, 0.456, 0.406),
                      "std": (0.229, 0.224, 0.225), "crop_pct": 0.875, "crop_mode": "center"}
    assert resolve_data_config({}, model=timm.create_model("vitkit_vit_tiny_patch16_224"))["mean"] == (0.5,) * 3


def test_timm_keywords_become_config_fields():
    model = timm.create_model("vitkit_vit_test", num_classes=3, drop_path_rate=0.1, global_pool="avg",
                              class_token=False)
    assert model.config.num_classes == 3 and model.config.global_pool == "avg"
    assert model.pretrained_cfg["num_classes"] == 3 and model.get_classifier() is model.head
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(TypeError, match="no option 'mlp_layer'"):
        timm.create_model("vitkit_vit_test", mlp_layer="swiglu")


def test_timm_optimiser_factory_with_layer_decay():
    for name in ("vitkit_vit_test", "vitkit_cvt_test"):
        model = timm.create_model(name)
        optimizer = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.75)
        scales = sorted({g["lr_scale"] for g in optimizer.param_groups})
        assert len(scales) >= 3 and scales[-1] == 1.0  # the head at full rate, earlier blocks less
        assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == sum(
            p.numel() for p in model.parameters())


def test_pretrained_goes_through_vitkits_table(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()
    cache = offline_hub_cache(tmp_path, monkeypatch)
    cache.put(PRETRAINED["vit_tiny_patch16_224"][0],
              {"model.safetensors": lambda p: save_file(dict(ref.state_dict()), str(p))})
    model = timm.create_model("vitkit_vit_tiny_patch16_224", pretrained=True).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max().item() <= 1e-4


def test_vit_forward_intermediates_equal_timms():
    ours = create_model("vit_tiny_patch16_224", depth=3).eval()
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=3).eval()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        for kwargs in ({"indices": 2, "norm": True}, {"indices": [0, -1], "output_fmt": "NLC"}):
            final, maps = ours.forward_intermediates(x, **kwargs)
            ref_final, ref_maps = ref.forward_intermediates(x, **kwargs)
            assert (final - ref_final).abs().max() <= 1e-4 and len(maps) == len(ref_maps) == 2
            assert all(a.shape == b.shape and (a - b).abs().max() <= 1e-4 for a, b in zip(maps, ref_maps, strict=True))
        early = ours.forward_intermediates(x, indices=[0], intermediates_only=True, stop_early=True)
        assert torch.allclose(early[0], ref.forward_intermediates(x, indices=[0], intermediates_only=True)[0],
                              atol=1e-4)


def test_cvt_forward_intermediates_are_the_stage_maps():
    model = create_model("cvt_test").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x, norm=True)
        features = model.forward_features(x)  # (B, 1 + h·w, C)
        assert torch.equal(final, features)
        assert [m.shape for m in maps] == [(2, 16, 8, 8), (2, 32, 4, 4)]  # strides 4 and 8
        assert torch.allclose(maps[1].flatten(2).transpose(1, 2), features[:, 1:])  # class token dropped
        assert torch.equal(model.forward_intermediates(x, indices=[0], intermediates_only=True, stop_early=True)[0],
                           maps[0])
    with pytest.raises(ValueError, match="out of range"):
        model.forward_intermediates(x, indices=[2])
