"""CvT checkpoints: Hugging Face and official microsoft/CvT layouts load through create_model; a new head is
re-initialised; another variant's checkpoint is refused with the disagreeing keys and shapes."""

import re

import pytest
import torch

from tests.models.test_cvt import random_hf
from vitkit import create_model
from vitkit.build import create_model_and_report
from vitkit.models import CvT, build_config
from vitkit.weights import CheckpointError
from vitkit.weights.cvt import convert, detect_layout

# Hugging Face → microsoft/CvT (lib/models/cls_cvt.py) names, written out independently of vitkit's converters.
HF_TO_OFFICIAL = [
    (r"cvt\.encoder\.stages\.(\d+)\.embedding\.convolution_embeddings\.projection\.", r"stage\1.patch_embed.proj."),
    (r"cvt\.encoder\.stages\.(\d+)\.embedding\.convolution_embeddings\.normalization\.", r"stage\1.patch_embed.norm."),
    (r"cvt\.encoder\.stages\.(\d+)\.cls_token", r"stage\1.cls_token"),
    (r"cvt\.encoder\.stages\.(\d+)\.layers\.(\d+)\.attention\.attention\.convolution_projection_(.)\w+"
     r"\.convolution_projection\.convolution\.", r"stage\1.blocks.\2.attn.conv_proj_\3.conv."),
    (r"cvt\.encoder\.stages\.(\d+)\.layers\.(\d+)\.attention\.attention\.convolution_projection_(.)\w+"
     r"\.convolution_projection\.normalization\.", r"stage\1.blocks.\2.attn.conv_proj_\3.bn."),
    (r"cvt\.encoder\.stages\.(\d+)\.layers\.(\d+)\.attention\.attention\.projection_(.)\w+\.",
     r"stage\1.blocks.\2.attn.proj_\3."),
    (r"cvt\.encoder\.stages\.(\d+)\.layers\.(\d+)\.attention\.output\.dense\.", r"stage\1.blocks.\2.attn.proj."),
    (r"cvt\.encoder\.stages\.(\d+)\.layers\.(\d+)\.intermediate\.dense\.", r"stage\1.blocks.\2.mlp.fc1."),
    (r"cvt\.encoder\.stages\.(\d+)\.layers\.(\d+)\.output\.dense\.", r"stage\1.blocks.\2.mlp.fc2."),
    (r"cvt\.encoder\.stages\.(\d+)\.layers\.(\d+)\.layernorm_before\.", r"stage\1.blocks.\2.norm1."),
    (r"cvt\.encoder\.stages\.(\d+)\.layers\.(\d+)\.layernorm_after\.", r"stage\1.blocks.\2.norm2."),
    (r"layernorm\.", "norm."),
    (r"classifier\.", "head."),
]


def to_official(hf_state_dict):
    out = {}
    for key, value in hf_state_dict.items():
        for pattern, replacement in HF_TO_OFFICIAL:
            new, n = re.subn("^" + pattern, replacement, key)
            if n:
                out[new] = value
                break
        else:
            raise AssertionError(f"no official name for {key}")
    return out


def test_official_layout_loads(tmp_path):
    ref = random_hf("cvt_test")
    official = to_official(ref.state_dict())
    assert "stage1.blocks.0.attn.conv_proj_k.bn.running_var" in official and "stage1.cls_token" in official
    assert detect_layout(official) == "official" and detect_layout(ref.state_dict()) == "hf"
    torch.save({"model": official}, tmp_path / "CvT-test.pth")  # training checkpoints wrap the weights
    model, report = create_model_and_report("cvt_test", checkpoint=tmp_path / "CvT-test.pth")
    model.eval()
    assert any("official microsoft/CvT" in n for n in report.notes)
    assert any("QuickGELU" in n for n in report.notes)  # GELU model: told how to reproduce exactly
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (model(x) - ref(x).logits).abs().max() <= 1e-4


def test_vitkit_layout_round_trip(tmp_path):
    model = create_model("cvt_test").eval()
    torch.save(model.state_dict(), tmp_path / "m.pth")
    again, report = create_model_and_report("cvt_test", checkpoint=tmp_path / "m.pth")
    again.eval()
    # every tensor but BatchNorm's num_batches_tracked counters, which loading ignores (a restarted count)
    assert len(report.loaded) == len([k for k in model.state_dict() if not k.endswith("num_batches_tracked")]) > 0
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_head_reinitialised_for_another_class_count(tmp_path):
    ref = random_hf("cvt_test")
    torch.save(ref.state_dict(), tmp_path / "hf.bin")
    model, report = create_model_and_report("cvt_test", num_classes=3, checkpoint=tmp_path / "hf.bin")
    model.eval()
    assert sorted(report.reinitialized) == ["head.bias", "head.weight"]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # everything below the head is the checkpoint's
        features = ref.layernorm(ref.cvt(x).cls_token_value)[:, 0]
        assert (model.forward_head(model.forward_features(x), pre_logits=True) - features).abs().max() <= 1e-4
        assert model(x).shape == (2, 3)


def _shape_only_checkpoint(name, path, **overrides):
    """The state dict of preset ``name``, every tensor an expanded zero (tiny file: only keys and shapes matter)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in CvT(build_config(name, **overrides)).state_dict().items()}
    torch.save({k: torch.zeros(()).expand(s) for k, s in shapes.items()}, path)


def test_cvt_21_checkpoint_into_cvt_13_names_the_extra_blocks(tmp_path):
    _shape_only_checkpoint("cvt_21", tmp_path / "cvt21.pth")
    with pytest.raises(CheckpointError) as err:
        create_model("cvt_13", checkpoint=tmp_path / "cvt21.pth")
    msg = str(err.value)
    assert "have no place in the model" in msg and "stages.1.blocks.2." in msg and "another variant" in msg


def test_wider_variant_names_the_disagreeing_shapes(tmp_path):
    ref = random_hf("cvt_test")
    torch.save(ref.state_dict(), tmp_path / "hf.bin")
    narrower = build_config("cvt_test").stages
    stages = (narrower[0], type(narrower[1])(dim=48, depth=2, num_heads=2))
    with pytest.raises(CheckpointError) as err:
        create_model("cvt_test", stages=stages, checkpoint=tmp_path / "hf.bin")
    msg = str(err.value)
    assert "differ in shape" in msg
    assert "stages.1.patch_embed.proj.weight: checkpoint (32, 16, 3, 3) vs model (48, 16, 3, 3)" in msg
    assert convert(ref.state_dict(), create_model("cvt_test"))[0]["stages.1.blocks.0.attn.qkv.weight"].shape == (96, 32)


def test_incomplete_qkv_is_reported(tmp_path):
    sd = random_hf("cvt_test").state_dict()
    del sd["cvt.encoder.stages.0.layers.0.attention.attention.projection_value.weight"]
    torch.save(sd, tmp_path / "hf.bin")
    with pytest.raises(CheckpointError, match=r"stages\.0\.blocks\.0\.attn\.qkv\.weight"):
        create_model("cvt_test", checkpoint=tmp_path / "hf.bin")
