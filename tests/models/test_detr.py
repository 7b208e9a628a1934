"""vitkit DETR against Hugging Face DetrForObjectDetection, and the checkpoint layouts it loads."""

import re

import pytest
import torch
from safetensors.torch import save_file

from vitkit import create_model
from vitkit.build import create_model_and_report
from vitkit.layers import FrozenBatchNorm2d, capture_attention
from vitkit.models import DETR, build_config, list_models
from vitkit.weights import CheckpointError

TEST_SHAPE = dict(d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                  encoder_attention_heads=2, decoder_attention_heads=2, num_queries=8, num_labels=5,
                  auxiliary_loss=True)


def hf_detr(**config):
    """A randomly initialised HF DETR, with non-trivial frozen-BN statistics so that they matter."""
    from transformers import DetrConfig, DetrForObjectDetection

    torch.manual_seed(0)
    model = DetrForObjectDetection(DetrConfig(**{**TEST_SHAPE, **config})).eval()
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0.0, 0.2)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
            elif "backbone" in name and name.endswith(("weight", "bias")) and b.ndim == 1:
                b.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
    return model


def batch(size=(64, 96)):
    g = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, *size, generator=g)
    mask = torch.ones(2, *size, dtype=torch.bool)
    mask[1, :, size[1] * 2 // 3:] = False  # second image narrower and shorter: padded right and bottom
    mask[1, size[0] * 3 // 4:, :] = False
    return images, mask


def save(state_dict, path):
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    return path


def max_diff(ours, hf, images, mask):
    with torch.no_grad():
        a = ours.eval()(images, mask)
        b = hf(pixel_values=images, pixel_mask=mask.long())
    return max((a["pred_logits"] - b.logits).abs().max().item(), (a["pred_boxes"] - b.pred_boxes).abs().max().item())


def test_forward_contract():
    model = create_model("detr_test").eval()
    images, mask = batch()
    out = model(images, mask)
    assert out["pred_logits"].shape == (2, 8, 6) and out["pred_boxes"].shape == (2, 8, 4)
    assert len(out["aux_outputs"]) == 1 and out["aux_outputs"][0]["pred_boxes"].shape == (2, 8, 4)
    assert out["pred_boxes"].min() >= 0 and out["pred_boxes"].max() <= 1
    assert "aux_outputs" not in create_model("detr_test", aux_loss=False)(images)
    with pytest.raises(ValueError, match="pixel_mask must be a boolean"):
        model(images, mask.long())
    with pytest.raises(ValueError, match="not a timm model"):
        create_model("detr_test", backbone="no_such_cnn")


def test_equals_hugging_face_timm_backbone(tmp_path):
    hf = hf_detr(backbone="test_resnet")
    ours, report = create_model_and_report("detr_test", checkpoint=save(hf.state_dict(), tmp_path / "hf.safetensors"))
    assert report.reinitialized == [] and report.skipped == []
    assert max_diff(ours, hf, *batch()) <= 1e-4


def test_equals_hugging_face_hub_era_layout(tmp_path):
    """Hub checkpoints predate transformers 5: conv_encoder, out_proj, layers.N.fc1."""
    hf = hf_detr(backbone="test_resnet")
    old = {}
    for key, value in hf.state_dict().items():
        key = key.replace("backbone.model.", "backbone.conv_encoder.model.").replace("o_proj", "out_proj")
        old[re.sub(r"layers\.(\d+)\.mlp\.", r"layers.\1.", key)] = value
    ours = create_model("detr_test", checkpoint=save(old, tmp_path / "old.safetensors"))
    assert max_diff(ours, hf, *batch()) <= 1e-4


def test_equals_hugging_face_own_resnet_backbone(tmp_path):
    """HF's ResNet (use_timm_backbone=False) maps onto timm's resnet18 of the same shape."""
    from transformers import ResNetConfig

    resnet = ResNetConfig(embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2],
                          layer_type="basic", out_features=["stage4"])
    hf = hf_detr(backbone_config=resnet, use_timm_backbone=False)
    path = save(hf.state_dict(), tmp_path / "hf_resnet.safetensors")
    ours = create_model("detr_test", backbone="resnet18", checkpoint=path)
    assert max_diff(ours, hf, *batch()) <= 1e-4


def hf_to_official(state_dict):
    """The official facebookresearch/detr names for an HF state dict (the table of HF's own conversion script)."""
    out = {}
    for key, value in state_dict.items():
        key = key.removeprefix("model.")
        if m := re.fullmatch(r"(encoder|decoder)\.layers\.(\d+)\.(self_attn|encoder_attn)\.([qkv])_proj\.(\w+)", key):
            if m[4] != "q":
                continue
            name = "self_attn" if m[3] == "self_attn" else "multihead_attn"
            parts = [state_dict[f"model.{m[1]}.layers.{m[2]}.{m[3]}.{p}_proj.{m[5]}"] for p in "qkv"]
            out[f"transformer.{m[1]}.layers.{m[2]}.{name}.in_proj_{m[5]}"] = torch.cat(parts)
            continue
        for old, new in [("backbone.model.", "backbone.0.body."), ("input_projection", "input_proj"),
                         ("query_position_embeddings", "query_embed"),
                         ("encoder_attn.o_proj", "multihead_attn.out_proj"),
                         ("o_proj", "out_proj"), ("self_attn_layer_norm", "norm1"), ("mlp.fc1", "linear1"),
                         ("mlp.fc2", "linear2"), ("decoder.layernorm", "decoder.norm"),
                         ("class_labels_classifier", "class_embed"), ("bbox_predictor", "bbox_embed")]:
            key = key.replace(old, new)
        key = key.replace("encoder_attn_layer_norm", "norm2")
        key = re.sub(r"(encoder\.layers\.\d+)\.final_layer_norm", r"\1.norm2", key)
        key = re.sub(r"(decoder\.layers\.\d+)\.final_layer_norm", r"\1.norm3", key)
        out["transformer." + key if key.startswith(("encoder.", "decoder.")) else key] = value
    return out


def test_official_layout_round_trip(tmp_path):
    hf = hf_detr(backbone="test_resnet")
    official = hf_to_official(hf.state_dict())
    assert "transformer.decoder.layers.1.multihead_attn.in_proj_weight" in official
    path = tmp_path / "detr-official.pth"
    torch.save({"model": official, "epoch": 1}, path)  # the release files wrap the weights in "model"
    ours, report = create_model_and_report("detr_test", checkpoint=path)
    assert "official" in report.notes[0]
    assert max_diff(ours, hf, *batch()) <= 1e-4


def test_checkpoint_from_another_backbone_names_the_keys(tmp_path):
    other = create_model("detr_test", backbone="test_efficientnet")
    path = save(other.state_dict(), tmp_path / "effnet.safetensors")
    expected = (r"(?s)backbone 'test_resnet'.*missing from the checkpoint.*'backbone\.conv1\.0\.weight'"
                r".*unknown to the model.*'backbone\.blocks\.0")
    with pytest.raises(CheckpointError, match=expected):
        create_model("detr_test", checkpoint=path)


def test_new_class_count_reinitialises_only_the_class_head(tmp_path):
    source = create_model("detr_test")
    path = save(source.state_dict(), tmp_path / "five.safetensors")
    model, report = create_model_and_report("detr_test", num_classes=2, checkpoint=path)
    assert sorted(report.reinitialized) == ["class_head.bias", "class_head.weight"]
    assert torch.equal(model.box_head[0].weight, source.box_head[0].weight)
    assert model.class_head.out_features == 3
    model.reset_classifier(7)
    assert model.class_head.out_features == 8 and model(torch.randn(1, 3, 64, 64))["pred_logits"].shape[-1] == 8


def test_frozen_backbone_and_learning_rates():
    model = create_model("detr_test")
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("backbone.conv1", "backbone.layer1.")) for n in frozen)
    assert any(n.startswith("backbone.layer1.") for n in frozen)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    bns = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert bns and all(b.folded and b.eps == 1e-5 for b in bns)
    from vitkit.tasks import DetectionTask  # the task owns optimisation: the backbone learns at lr / 10 by default

    task = DetectionTask(model)
    assert task.lr_scale("backbone.layer4.0.conv1.weight") == 0.1 and task.lr_scale("class_head.weight") == 1.0
    assert DetectionTask(model, lr=2e-4, lr_backbone=5e-5).lr_scale("backbone.layer4.0.conv1.weight") == 0.25
    assert all(p.requires_grad for p in create_model("detr_test", backbone_frozen_stages=-1).parameters())
    whole = create_model("detr_test", backbone_frozen_stages=99)
    assert not any(p.requires_grad for n, p in whole.named_parameters() if n.startswith("backbone."))


def _hf_count(name: str) -> int:
    """Parameters of Hugging Face's DETR built with preset ``name``'s configuration (timm backbone)."""
    from transformers import DetrConfig, DetrForObjectDetection

    c = build_config(name)
    config = DetrConfig(num_labels=c.num_classes, num_queries=c.num_queries, d_model=c.dim,
                        encoder_layers=c.enc_depth, decoder_layers=c.dec_depth, encoder_attention_heads=c.num_heads,
                        decoder_attention_heads=c.num_heads, encoder_ffn_dim=int(c.dim * c.mlp_ratio),
                        decoder_ffn_dim=int(c.dim * c.mlp_ratio), backbone=c.backbone, use_pretrained_backbone=False,
                        dilation=c.output_stride == 16)
    return sum(p.numel() for p in DetrForObjectDetection(config).parameters())


@pytest.mark.parametrize("name", list_models("detr_*"))
def test_every_preset_builds_on_the_meta_device_with_hugging_faces_parameter_count(name):
    with torch.device("meta"):
        ours = sum(p.numel() for p in create_model(name).parameters())
        assert ours == _hf_count(name), name
    if name in ("detr_r50", "detr_r50_dc5"):
        assert 41.0e6 < ours < 42.0e6  # paper: 41M
    if name == "detr_r101":
        assert 60.0e6 < ours < 61.0e6  # paper: 60M


def test_cross_attention_is_captured_per_query():
    model = create_model("detr_test").eval()
    images, mask = batch()
    with torch.no_grad(), capture_attention(model) as maps:
        model(images, mask)
    weights = maps["decoder.1.cross_attn"][0]  # (B, nh, Q, h·w)
    assert weights.shape == (2, 2, 8, 2 * 3)  # 64×96 image, stride 32 → 2×3 grid
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 8))
    padded = (torch.nn.functional.interpolate(mask[:, None].float(), size=(2, 3))[:, 0] < 0.5).flatten(1)
    assert padded[1].any() and weights[1][..., padded[1]].abs().max() == 0


def test_autocast_forward_is_finite():
    model = create_model("detr_test").eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(*batch())
    assert torch.isfinite(out["pred_logits"]).all() and torch.isfinite(out["pred_boxes"]).all()


def test_is_registered():
    assert isinstance(create_model("detr_test"), DETR)


def test_query_attention_maps_back_to_pixels():
    from vitkit.viz.attention_maps import attention_maps
    from vitkit.viz.detr_attention import detr_cross_attention_maps, query_attention_to_pixels

    # A query that attends only to grid cell (row 1, col 2) of a 2×3 grid lights up that 32×32 block of pixels.
    weights = torch.zeros(1, 2, 1, 6)
    weights[..., 1 * 3 + 2] = 1.0
    maps = query_attention_to_pixels(weights, (2, 3), (64, 96))
    assert maps.shape == (1, 1, 64, 96)
    inside, outside = maps[0, 0, 32:, 64:], maps[0, 0, :32, :64]
    assert inside.mean() > 0.5 and outside.max() < 0.25 and maps[0, 0, :16, :48].max() == 0
    row, col = divmod(int(maps[0, 0].argmax()), 96)
    assert 32 <= row < 64 and 64 <= col < 96
    with pytest.raises(ValueError, match="grid \\(2, 2\\) has 4 cells"):
        query_attention_to_pixels(weights, (2, 2), (64, 96))
    model = create_model("detr_test").eval()
    images, mask = batch()
    outputs, per_query = detr_cross_attention_maps(model, images, mask)
    assert per_query.shape == (2, 8, 64, 96) and per_query.amax() <= 1.0
    assert outputs["pred_logits"].shape == (2, 8, 6)
    assert attention_maps(model, images).shape == (2, 64, 96)


def test_backbone_trained_from_scratch_gets_gradients_everywhere():
    # timm zero-initialises each residual block's last BatchNorm scale; frozen, those branches would never learn.
    model = create_model("detr_test", backbone_norm="batch", backbone_frozen_stages=-1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, mask = torch.randn(2, 3, 64, 64), torch.ones(2, 64, 64, dtype=torch.bool)
    for _ in range(2):  # after the first step the zero scales have moved, and every parameter gets a gradient
        out = model(x, mask)
        opt.zero_grad()
        (out["pred_logits"].sum() + out["pred_boxes"].sum()).backward()
        opt.step()
    dead = [n for n, p in model.backbone.named_parameters() if p.grad is None or not p.grad.abs().max() > 0]
    assert not dead


def test_backbone_level_feeds_an_earlier_stage():
    # level 3 of a ResNet is layer3 (stride 16): twice the grid of the last level, and layer4 is not built at all
    last, mid = create_model("detr_test"), create_model("detr_test", backbone_level=3, backbone_frozen_stages=2)
    x = torch.randn(1, 3, 64, 96)
    assert last.forward_backbone(x, None)[0].shape[-2:] == (2, 3)
    features, valid = mid.forward_backbone(x, None)
    assert features.shape[-2:] == (4, 6) and valid.shape == (1, 4, 6)
    assert mid.input_proj.in_channels == features.shape[1]
    assert not any(n.startswith("backbone.layer4") for n, _ in mid.named_parameters())
    assert mid(x)["pred_boxes"].shape == (1, 8, 4)
    frozen = {n.split(".")[1] for n, p in mid.named_parameters() if not p.requires_grad}
    assert frozen == {"conv1", "layer1", "layer2"}  # stem + 2 stages (BatchNorm folded); layer3 feeds and trains
    whole = create_model("detr_test", backbone_level=2, backbone_frozen_stages=2)  # up to the fed level: all frozen
    assert not any(p.requires_grad for n, p in whole.named_parameters() if n.startswith("backbone."))


def test_backbone_level_out_of_range_names_the_valid_levels():
    with pytest.raises(ValueError, match=r"backbone_level=5 is not a feature level of 'test_resnet'; .* 0\.\.4"):
        create_model("detr_test", backbone_level=5)
