"""vitkit's ViT against timm: same parameters, same logits after loading timm's weights through create_model."""

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

from vitkit import create_model
from vitkit.build import create_model_and_report
from vitkit.errors import ConfigError
from vitkit.models import list_models
from vitkit.weights import CheckpointError

TIMM_MIRRORS = ["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224"]


def _timm(name, **kw):
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kw).eval()


@pytest.mark.parametrize("name", [*TIMM_MIRRORS, "vit_large_patch16_224"])
def test_parameter_count_equals_timm(name):
    with torch.device("meta"):
        ours, theirs = create_model(name), timm.create_model(name, pretrained=False)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize("name", TIMM_MIRRORS)
def test_logits_equal_timm_at_native_and_resampled_size(name, tmp_path):
    ref = _timm(name)
    path = tmp_path / "timm.safetensors"
    save_file(ref.state_dict(), str(path))
    model, report = create_model_and_report(name, checkpoint=path)
    model.eval()
    assert not report.reinitialized and not report.skipped
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() <= 1e-4

        # load-time resampling: a 224 checkpoint into a 160 model, as timm resamples it
        small, small_report = create_model_and_report(name, img_size=160, checkpoint=path)
        small.eval()
        ref_small = _timm(name, img_size=160)
        sd = ref.state_dict()
        sd["pos_embed"] = resample_abs_pos_embed(sd["pos_embed"], (10, 10), num_prefix_tokens=1)
        ref_small.load_state_dict(sd)
        x = torch.randn(1, 3, 160, 160)
        assert (small(x) - ref_small(x)).abs().max() <= 1e-4
        assert any("resampled pos_embed" in n for n in small_report.notes)

        # forward-time resampling: the 224 model on 160×192 images, as timm's dynamic_img_size does
        ref_dyn = _timm(name, dynamic_img_size=True)
        ref_dyn.load_state_dict(ref.state_dict())
        x = torch.randn(1, 3, 160, 192)
        assert (model(x) - ref_dyn(x)).abs().max() <= 1e-4


def test_avg_pool_variant_matches_timm(tmp_path):
    ref = _timm("vit_tiny_patch16_224", global_pool="avg", class_token=False, img_size=64, num_classes=7)
    torch.save(ref.state_dict(), tmp_path / "m.pth")
    model = create_model("vit_tiny_patch16_224", global_pool="avg", class_token=False, img_size=64, num_classes=7,
                         checkpoint=tmp_path / "m.pth").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() <= 1e-4


def test_new_head_is_reinitialised_and_reported(tmp_path):
    torch.save(_timm("vit_tiny_patch16_224", img_size=32).state_dict(), tmp_path / "m.bin")
    model, report = create_model_and_report("vit_tiny_patch16_224", img_size=32, num_classes=5,
                                            checkpoint=tmp_path / "m.bin")
    assert sorted(report.reinitialized) == ["head.bias", "head.weight"]
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_checkpoint_of_other_variant_names_the_shapes(tmp_path):
    torch.save(create_model("vit_test").state_dict(), tmp_path / "test.pth")
    with pytest.raises(CheckpointError) as err:
        create_model("vit_tiny_patch16_224", img_size=32, checkpoint=tmp_path / "test.pth")
    assert "patch_embed.proj.weight: checkpoint (32, 3, 8, 8) vs model (192, 3, 16, 16)" in str(err.value)
    assert "blocks.2.attn.qkv.weight" in str(err.value)  # missing: the checkpoint has 2 blocks, the model 12


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    torch.save({"state_dict": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused to load"):
        create_model("vit_test", checkpoint=tmp_path / "evil.pth")


def test_every_preset_runs_forward_and_backward():
    for name in list_models("vit_*"):
        if "224" in name:
            continue  # the 224 presets are exercised against timm above
        model = create_model(name)
        cfg = model.config
        x = torch.randn(2, cfg.in_chans, cfg.img_size, cfg.img_size)
        out = model(x)
        assert out.shape == (2, cfg.num_classes)
        out.sum().backward()


def test_fused_and_reference_paths_agree():
    model = create_model("vit_test").eval()
    x = torch.randn(2, 3, 32, 32)
    fused = model(x)
    ref = create_model("vit_test", fused_attn=False).eval()
    ref.load_state_dict(model.state_dict())
    assert (ref(x) - fused).abs().max() <= 1e-5


def test_unknown_preset_and_field():
    with pytest.raises(KeyError, match="did you mean vit_tiny_patch16_224"):
        create_model("vit_tiny_patch16_244")
    with pytest.raises(ConfigError, match="unknown config field"):
        create_model("vit_test", embed_dim=64)
    with pytest.raises(ValueError, match="divisible by patch_size"):
        create_model("vit_test", img_size=30)


def test_forward_is_the_head_of_the_features():
    model = create_model("vit_test", drop_path_rate=0.0).eval()
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(model(x), model.forward_head(model.forward_features(x)))
    model.train()  # and every parameter receives a gradient
    model(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
