"""vitkit RT-DETR against Hugging Face RTDetrForObjectDetection with converted random weights, and its contracts."""

import re

import pytest
import torch
from safetensors.torch import save_file

from vitkit import create_model
from vitkit.build import create_model_and_report
from vitkit.errors import ConfigError
from vitkit.models import build_config, list_models
from vitkit.models.rtdetr_encoder import RepVggBlock, fold_repvgg
from vitkit.weights import CheckpointError

BLOCKS = {"resnet18d": ("basic", (2, 2, 2, 2)), "resnet34d": ("basic", (3, 4, 6, 3)),
          "resnet50d": ("bottleneck", (3, 4, 6, 3)), "resnet101d": ("bottleneck", (3, 4, 23, 3))}


def hf_config(name, **overrides):
    """Hugging Face's RTDetrConfig for vitkit preset ``name`` (its RTDetrResNet = PResNet-vd backbone)."""
    from transformers import RTDetrConfig, RTDetrResNetConfig

    c = build_config(name, **overrides)
    kind, depths = BLOCKS[c.backbone]
    kw = dict(c.backbone_kwargs)
    channels = kw.get("channels", (64, 128, 256, 512))
    hidden = [ch * (4 if kind == "bottleneck" else 1) for ch in channels]
    backbone = RTDetrResNetConfig(embedding_size=2 * kw.get("stem_width", 32), hidden_sizes=hidden,
                                  depths=list(kw.get("layers", depths)), layer_type=kind,
                                  out_features=["stage2", "stage3", "stage4"])
    return RTDetrConfig(backbone_config=backbone, encoder_in_channels=hidden[1:], encoder_hidden_dim=c.encoder_dim,
                        encoder_attention_heads=c.encoder_heads, encoder_ffn_dim=c.encoder_ffn_dim,
                        hidden_expansion=c.expansion, d_model=c.dim, decoder_in_channels=[c.encoder_dim] * 3,
                        decoder_attention_heads=c.num_heads, decoder_ffn_dim=c.dec_ffn_dim,
                        decoder_layers=c.dec_depth, num_queries=c.num_queries, num_labels=c.num_classes,
                        num_denoising=c.num_denoising, decoder_n_points=c.num_points)


def hf_rtdetr(name="rtdetr_test", **overrides):
    """A random HF RT-DETR: random norms and BatchNorm statistics, unit-gain layers, so that all of it matters."""
    from transformers import RTDetrForObjectDetection

    torch.manual_seed(0)
    model = RTDetrForObjectDetection(hf_config(name, **overrides)).eval()
    with torch.no_grad():
        for module in model.modules():
            if type(module).__name__.endswith(("BatchNorm2d", "LayerNorm")):  # frozen ones too
                module.weight.normal_(1.0, 0.2)
                module.bias.normal_(0.0, 0.2)
            if hasattr(module, "running_var"):
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):  # HF's N(0, 0.01) makes near-ties
                module.weight.normal_(0.0, module.weight[0].numel() ** -0.5)
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.1)
    return model


@pytest.fixture(scope="module")
def hf18():
    return hf_rtdetr()


@pytest.fixture(scope="module")
def hf50():
    return hf_rtdetr(backbone="resnet50d")


def save(state_dict, path):
    save_file({k: v.detach().clone().contiguous() for k, v in state_dict.items()}, str(path))
    return path


def max_diff(ours, hf, size, batch=2):
    """Largest difference of class logits and boxes, queries paired by the encoder token they were selected from.

    Random weights give thousands of encoder scores within ~1e-4 of each other, so rounding can order two of the
    selected tokens differently in the two implementations; the decoder is permutation-equivariant, so each query is
    compared with the one that started from the same token (same encoder scores and box). Tokens whose anchor
    leaves the image all carry the same (zeroed) feature, so they tie exactly and are interchangeable."""
    images = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = ours.eval()(images)
        b = hf(pixel_values=images)
    def token(logits, boxes):  # what a selected token brings: its encoder scores and box
        return torch.cat([logits, boxes], dim=-1)

    ours_tokens = token(a["enc_outputs"]["pred_logits"], a["enc_outputs"]["pred_boxes"])
    distance = torch.cdist(token(b.enc_topk_logits, b.enc_topk_bboxes), ours_tokens,
                           compute_mode="donot_use_mm_for_euclid_dist")  # (B, Q, Q): exact, not |a|²+|b|²-2ab
    gap, pairs = distance.min(-1)  # (B, Q): HF query → ours; tokens outside the image are identical, any will do
    assert gap.max() <= 1e-4, "the selected token sets differ"
    logits, boxes = (x.gather(1, pairs[..., None].expand(-1, -1, x.shape[-1])) for x in (a["pred_logits"],
                                                                                         a["pred_boxes"]))
    return max((logits - b.logits).abs().max().item(), (boxes - b.pred_boxes).abs().max().item())


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("backbone", ["resnet18d", "resnet50d"])
def test_equals_hugging_face(tmp_path, backbone, request):
    """Basic (R18/R34) and bottleneck (R50/R101) blocks, a square and a non-square size."""
    hf = request.getfixturevalue("hf18" if backbone == "resnet18d" else "hf50")
    path = save(hf.state_dict(), tmp_path / "hf.safetensors")
    ours, report = create_model_and_report("rtdetr_test", backbone=backbone, checkpoint=path)
    assert report.reinitialized == [] and report.skipped == [] and "Hugging Face" in report.notes[0]
    assert count(ours) == count(hf)
    for size in ((128, 128), (96, 160)):
        assert max_diff(ours, hf, size) <= 1e-4, size


def test_equals_hugging_face_hub_era_layout(tmp_path, hf18):
    """Hub files predate transformers 5: encoder.encoder, out_proj, layers.N.fc1, heads also at the top level."""
    hf = hf18
    old = {}
    for key, value in hf.state_dict().items():
        key = key.replace("encoder.aifi.", "encoder.encoder.").replace(".o_proj.", ".out_proj.")
        old[re.sub(r"layers\.(\d+)\.mlp\.", r"layers.\1.", key)] = value
        if m := re.match(r"model\.decoder\.((?:class|bbox)_embed\..+)", key):
            old[m[1]] = value
    ours = create_model("rtdetr_test", checkpoint=save(old, tmp_path / "old.safetensors"))
    assert max_diff(ours, hf, (64, 96)) <= 1e-4


def test_new_class_count_reinitialises_only_the_class_heads(tmp_path, hf18):
    path = save(hf18.state_dict(), tmp_path / "five.safetensors")
    model, report = create_model_and_report("rtdetr_test", num_classes=3, checkpoint=path)
    heads = ("enc_score_head.", "decoder.class_heads.", "denoising_class_embed.")
    assert report.reinitialized and all(k.startswith(heads) for k in report.reinitialized)
    assert {k.split(".")[0] for k in report.reinitialized} == {"enc_score_head", "decoder", "denoising_class_embed"}
    assert "re-initialised" in str(report)
    assert model(torch.randn(1, 3, 64, 64))["pred_logits"].shape == (1, 10, 3)


def test_reset_classifier_replaces_only_the_class_heads():
    model = create_model("rtdetr_test")
    boxes = model.decoder.box_heads[0].layers[0].weight.clone()
    model.reset_classifier(7)
    assert model.config.num_classes == 7 and model.decoder.class_heads[1].out_features == 7
    assert model.denoising_class_embed.num_embeddings == 8 and model.enc_score_head.out_features == 7
    assert torch.equal(model.decoder.box_heads[0].layers[0].weight, boxes)


def test_checkpoint_of_another_variant_names_the_keys(tmp_path, hf50):
    path = save(hf50.state_dict(), tmp_path / "r50.safetensors")
    with pytest.raises(CheckpointError, match=r"(?s)backbone 'resnet18d'.*conv3"):
        create_model("rtdetr_test", checkpoint=path)


def test_forward_contract_any_size():
    model = create_model("rtdetr_test").eval()
    out = model(torch.randn(2, 3, 70, 100))  # not a multiple of 32: padded
    assert out["pred_logits"].shape == (2, 10, 5) and out["pred_boxes"].shape == (2, 10, 4)
    assert len(out["aux_outputs"]) == 1 and out["enc_outputs"]["pred_boxes"].shape == (2, 10, 4)
    assert "aux_outputs" not in create_model("rtdetr_test", aux_loss=False).eval()(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="pixel_mask must be a boolean"):
        model(torch.randn(1, 3, 64, 64), torch.ones(1, 64, 64))
    with pytest.raises(ValueError, match="pixel_mask must be a boolean"):
        model(torch.randn(1, 3, 64, 64), torch.ones(1, 64, 60, dtype=torch.bool))


def test_padding_keeps_boxes_relative_to_the_image():
    """A 64×80 image is padded to 64×96: the boxes equal those of the explicitly padded image, rescaled."""
    model = create_model("rtdetr_test").eval()
    image = torch.randn(1, 3, 64, 80)
    padded = torch.nn.functional.pad(image, [0, 16])
    with torch.no_grad():
        a, b = model(image), model(padded)
    assert torch.allclose(a["pred_logits"], b["pred_logits"])
    assert torch.allclose(a["pred_boxes"], b["pred_boxes"] * torch.tensor([96 / 80, 1, 96 / 80, 1]))


def test_pixel_mask_gives_each_image_its_own_extent():
    model = create_model("rtdetr_test").eval()
    images = torch.randn(2, 3, 64, 96)
    mask = torch.ones(2, 64, 96, dtype=torch.bool)
    mask[1, :, 64:] = False  # the second image is 64×64, padded on the right
    with torch.no_grad():
        plain, masked = model(images), model(images, mask)
    assert torch.equal(plain["pred_boxes"][0], masked["pred_boxes"][0])
    assert torch.allclose(plain["pred_boxes"][1] * torch.tensor([1.5, 1, 1.5, 1]), masked["pred_boxes"][1])


def test_more_queries_than_encoder_tokens_is_a_config_error():
    model = create_model("rtdetr_test", num_queries=50).eval()
    with pytest.raises(ConfigError, match=r"num_queries=50 exceeds the 42 encoder tokens"):
        model(torch.randn(1, 3, 32, 64))  # levels (4, 8), (2, 4), (1, 2): 32 + 8 + 2 tokens


def test_repvgg_folded_equals_unfolded():
    torch.manual_seed(0)
    block = RepVggBlock(8)
    with torch.no_grad():
        for bn in (block.conv1.norm, block.conv2.norm):
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_(1, 0.3)
            bn.bias.normal_(0, 0.3)
    block.eval()
    x = torch.randn(2, 8, 9, 7)
    unfolded = block(x)
    block.fold()
    assert (block(x) - unfolded).abs().max().item() <= 1e-5
    model = create_model("rtdetr_test").eval()
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(image)["pred_boxes"]
        assert fold_repvgg(model) == 12  # 3 per CSP block, 4 CSP blocks
        assert (model(image)["pred_boxes"] - before).abs().max().item() <= 1e-5
    assert not any("folded" in k for k in model.state_dict())


@pytest.mark.parametrize("name", list_models("rtdetr_r*"))
def test_presets_on_the_meta_device_have_hugging_faces_parameter_count(name):
    from transformers import RTDetrForObjectDetection

    with torch.device("meta"):
        ours = count(create_model(name))
        theirs = count(RTDetrForObjectDetection(hf_config(name)))
    assert ours == theirs, name
    paper = {"rtdetr_r18vd": 20e6, "rtdetr_r34vd": 31e6, "rtdetr_r50vd": 42e6, "rtdetr_r101vd": 76e6}[name]
    assert abs(ours - paper) / paper < 0.05, (name, ours)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rtdetr_r18vd", "rtdetr_r50vd"])
def test_full_size_presets_equal_hugging_face(tmp_path, name):
    """The acceptance shapes: r18vd and r50vd, 640² and 480×640, one image each."""
    hf = hf_rtdetr(name)
    ours, report = create_model_and_report(name, checkpoint=save(hf.state_dict(), tmp_path / f"{name}.safetensors"))
    assert report.reinitialized == [] and count(ours) == count(hf)
    for size in ((640, 640), (480, 640)):
        assert max_diff(ours, hf, size, batch=1) <= 1e-4, size


def _branch(m):
    part = "conv" if m[3] == "conv" else "norm"
    return f"backbone.res_layers.{int(m[1]) - 1}.blocks.{m[2]}.branch2{'abc'[int(m[4]) - 1]}.{part}."


def _short(m):
    short = "short" if m[1] == "1" else "short.conv"  # stride 2: average pool then conv ("short.pool", "short.conv")
    return f"backbone.res_layers.{int(m[1]) - 1}.blocks.{m[2]}.{short}.{'conv' if m[3] == '1' else 'norm'}."


def to_official(state_dict):
    """vitkit names → the official lyuwenyu/RT-DETR names (PResNet, nn.MultiheadAttention, dec_*_head)."""
    rules = [
        (r"backbone\.conv1\.([0-6])\.", lambda m: "backbone.conv1.conv1_{}.{}.".format(*{
            "0": (1, "conv"), "1": (1, "norm"), "3": (2, "conv"), "4": (2, "norm"), "6": (3, "conv")}[m[1]])),
        (r"backbone\.bn1\.", "backbone.conv1.conv1_3.norm."),
        (r"backbone\.layer(\d)\.(\d+)\.(conv|bn)(\d)\.", _branch),
        (r"backbone\.layer(\d)\.(\d+)\.downsample\.([12])\.", _short),
        (r"^input_proj\.", "encoder.input_proj."),
        (r"encoder\.aifi\.(\d+)\.attn\.qkv\.", r"encoder.encoder.0.layers.\1.self_attn.in_proj_"),
        (r"encoder\.aifi\.(\d+)\.attn\.proj\.", r"encoder.encoder.0.layers.\1.self_attn.out_proj."),
        (r"encoder\.aifi\.(\d+)\.mlp\.fc(\d)\.", r"encoder.encoder.0.layers.\1.linear\2."),
        (r"encoder\.aifi\.(\d+)\.(norm\d)\.", r"encoder.encoder.0.layers.\1.\2."),
        (r"decoder_input_proj\.(\d+)\.0\.", r"decoder.input_proj.\1.conv."),
        (r"decoder_input_proj\.(\d+)\.1\.", r"decoder.input_proj.\1.norm."),
        (r"^decoder\.layers\.(\d+)\.attn\.qkv\.", r"decoder.decoder.layers.\1.self_attn.in_proj_"),
        (r"^decoder\.layers\.(\d+)\.attn\.proj\.", r"decoder.decoder.layers.\1.self_attn.out_proj."),
        (r"^decoder\.layers\.(\d+)\.mlp\.fc(\d)\.", r"decoder.decoder.layers.\1.linear\2."),
        (r"^decoder\.layers\.", "decoder.decoder.layers."),
        (r"^(denoising_class_embed|enc_output|enc_score_head|enc_bbox_head)\.", r"decoder.\1."),
        (r"decoder\.class_heads\.", "decoder.dec_score_head."),
        (r"decoder\.box_heads\.", "decoder.dec_bbox_head."),
    ]
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def test_official_layout(tmp_path, hf18):
    ours = create_model("rtdetr_test", checkpoint=save(hf18.state_dict(), tmp_path / "hf.safetensors"))
    official = to_official(ours.state_dict())
    assert "decoder.decoder.layers.1.self_attn.in_proj_weight" in official
    assert "backbone.res_layers.1.blocks.0.short.conv.conv.weight" in official
    official["encoder.pan_blocks.0.bottlenecks.0.conv.weight"] = torch.zeros(16, 16, 3, 3)  # a deployed RepVGG
    torch.save({"ema": {"module": official, "updates": 10}}, tmp_path / "rtdetr_official.pth")
    loaded, report = create_model_and_report("rtdetr_test", checkpoint=tmp_path / "rtdetr_official.pth")
    assert "official" in report.notes[0] and report.reinitialized == []
    assert max_diff(loaded, hf18, (64, 96)) <= 1e-4


def _leaves(out):
    """Every tensor in a (nested) output dict."""
    if isinstance(out, torch.Tensor):
        return [out]
    values = out.values() if isinstance(out, dict) else out
    return [t for v in values for t in _leaves(v)]


@pytest.mark.parametrize("backbone_norm", ["frozen", "batch"])
def test_grad_checkpointing_keeps_outputs_gradients_and_statistics(backbone_norm):
    """A training step with denoising queries: every checkpointed module runs twice, the rest is unchanged."""
    from vitkit.detection.denoising import make_denoising_group

    torch.manual_seed(0)
    plain = create_model("rtdetr_test", backbone_norm=backbone_norm).train()
    checkpointed = create_model("rtdetr_test", backbone_norm=backbone_norm).train()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.set_grad_checkpointing(True)
    images = torch.randn(2, 3, 64, 96)
    targets = [{"labels": torch.tensor([1, 3]), "boxes": torch.tensor([[0.3, 0.4, 0.2, 0.3], [0.7, 0.6, 0.3, 0.2]])},
               {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])}]
    watched = {"aifi": lambda m: m.encoder.aifi[0], "csp": lambda m: m.encoder.pan_blocks[1],
               "decoder": lambda m: m.decoder.layers[1], "backbone": lambda m: m.backbone.layer2}
    calls, results = {}, {}
    for label, model in (("plain", plain), ("checkpointed", checkpointed)):
        for name, get in watched.items():
            calls[label, name] = 0
            get(model).register_forward_pre_hook(lambda *_, key=(label, name): calls.__setitem__(key, calls[key] + 1))
        torch.manual_seed(1)  # the same denoising noise
        dn = make_denoising_group(targets, model.denoising_class_embed, num_queries=10, num_denoising=6)
        out = model(images, denoising=dn)
        loss = sum((t.float() ** 2).mean() for t in _leaves(out))
        loss.backward()
        results[label] = loss, {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    assert {k: v for k, v in calls.items() if k[0] == "plain"} == {("plain", n): 1 for n in watched}
    recomputed = {n: calls["checkpointed", n] for n in watched}
    assert recomputed == {"aifi": 2, "csp": 2, "decoder": 2, "backbone": 2 if backbone_norm == "frozen" else 1}
    (loss, grads), (loss_ck, grads_ck) = results["plain"], results["checkpointed"]
    assert loss_ck.item() == loss.item() and grads.keys() == grads_ck.keys() and len(grads) > 100
    for key, grad in grads.items():
        assert torch.allclose(grads_ck[key], grad, atol=1e-6, rtol=1e-5), key
    buffers = dict(checkpointed.named_buffers())
    for key, value in plain.named_buffers():  # BatchNorm statistics updated once, not again in the recomputation
        assert value is None or torch.equal(buffers[key], value), key
