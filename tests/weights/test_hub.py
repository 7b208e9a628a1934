"""Weights by name from the Hugging Face Hub, read offline from a cache the test writes in huggingface_hub's layout:
``hf-hub:`` ids and ``pretrained=True`` load exactly as local files do (== timm / Hugging Face with the same random
weights), and every way of not having the file is one line naming the repo and what to do."""

import pytest
import timm
import torch
from safetensors.torch import save_file

from tests.models.test_cvt import max_diff as cvt_diff
from tests.models.test_cvt import random_hf
from tests.models.test_detr import batch, hf_detr
from tests.models.test_detr import max_diff as detr_diff
from tests.models.test_rtdetr import hf_rtdetr
from tests.models.test_rtdetr import max_diff as rtdetr_diff
from vitkit import create_model
from vitkit.build import create_model_and_report
from vitkit.models import build_config
from vitkit.weights import CheckpointError
from vitkit.weights.hub import PRETRAINED

SMALL_DETR = dict(dim=32, enc_depth=1, dec_depth=2, mlp_ratio=2.0, num_heads=2, num_queries=8, num_classes=5)


def safetensors_of(model):
    return lambda path: save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def test_vit_in21k_from_the_hub_equals_timm(hub_cache):
    torch.manual_seed(0)
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=21843).eval()
    hub_cache.put("timm/vit_tiny_patch16_224.augreg_in21k", {"model.safetensors": safetensors_of(ref)})
    ours, report = create_model_and_report("vit_tiny_patch16_224", num_classes=21843,
                                           checkpoint="hf-hub:timm/vit_tiny_patch16_224.augreg_in21k")
    assert report.source == "hf-hub:timm/vit_tiny_patch16_224.augreg_in21k" and not report.reinitialized
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert (ours.eval()(x) - ref(x)).abs().max().item() <= 1e-4


def test_pretrained_resolves_through_the_table(hub_cache):
    torch.manual_seed(1)
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()  # 1000 classes: the in1k default
    hub_cache.put(PRETRAINED["vit_tiny_patch16_224"][0], {"model.safetensors": safetensors_of(ref)})
    ours = create_model("vit_tiny_patch16_224", pretrained=True).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max().item() <= 1e-4


def test_timm_model_by_name_takes_timms_hub_weights(hub_cache):
    torch.manual_seed(2)
    ref = timm.create_model("test_vit", pretrained=False).eval()
    hub_cache.put(ref.pretrained_cfg["hf_hub_id"], {"model.safetensors": safetensors_of(ref)})
    ours = create_model("test_vit", pretrained=True).eval()
    x = torch.randn(1, 3, *ref.pretrained_cfg["input_size"][1:])
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))


def test_cvt_13_from_its_hub_repo_equals_hugging_face(hub_cache):
    ref = random_hf("cvt_13")
    # microsoft/cvt-13 holds pytorch_model.bin only: the second of the files tried
    hub_cache.put("microsoft/cvt-13", {"pytorch_model.bin": lambda p: torch.save(ref.state_dict(), p)})
    ours = create_model("cvt_13", pretrained=True)
    assert cvt_diff(ours, ref, torch.randn(1, 3, 96, 96)) <= 1e-4


def test_detr_r50_from_its_hub_repo_equals_hugging_face(hub_cache):
    """facebook/detr-resnet-50's layout and ResNet-50 backbone, with a narrow Transformer to stay fast."""
    hf = hf_detr(backbone="resnet50")
    hub_cache.put("facebook/detr-resnet-50", {"model.safetensors": safetensors_of(hf)})
    ours = create_model("detr_r50", pretrained=True, **SMALL_DETR)
    assert detr_diff(ours, hf, *batch()) <= 1e-4
    same = create_model("detr_r50", checkpoint="hf-hub:facebook/detr-resnet-50/model.safetensors", **SMALL_DETR)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), same.state_dict().values(), strict=True))


def test_rtdetr_r18vd_from_its_hub_repo_equals_hugging_face(hub_cache):
    """PekingU/rtdetr_r18vd through the table, shrunk to rtdetr_test's widths (same ResNet-18-D family) to stay
    fast."""
    from dataclasses import asdict


    tiny = {k: v for k, v in asdict(build_config("rtdetr_test")).items() if k != "backbone"}
    hf = hf_rtdetr("rtdetr_r18vd", **tiny)
    hub_cache.put("PekingU/rtdetr_r18vd", {"model.safetensors": safetensors_of(hf)})
    ours, report = create_model_and_report("rtdetr_r18vd", pretrained=True, **tiny)
    assert report.source == "hf-hub:PekingU/rtdetr_r18vd" and not report.reinitialized
    assert rtdetr_diff(ours, hf, (64, 96)) <= 1e-4


def test_detr_imagenet_backbone_only(hub_cache):
    torch.manual_seed(3)
    cnn = timm.create_model("test_resnet", pretrained=False).eval()
    with torch.no_grad():
        for name, b in cnn.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
    hub_cache.put("timm/test_resnet.r160_in1k", {"model.safetensors": safetensors_of(cnn)})
    fresh = create_model("detr_test")
    ours, report = create_model_and_report("detr_test", pretrained="backbone")
    assert report.source == "hf-hub:timm/test_resnet.r160_in1k"
    assert any("backbone only" in n for n in report.notes) and any("skipped" in n for n in report.notes)
    features = timm.create_model("test_resnet", pretrained=False, features_only=True, out_indices=(-1,)).eval()
    features.load_state_dict({k: v for k, v in cnn.state_dict().items() if not k.startswith("fc.")})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (ours.eval().backbone(x)[-1] - features(x)[-1]).abs().max().item() <= 1e-4
    assert ours.query_embed.shape == fresh.query_embed.shape  # the Transformer is built, not loaded


def test_rtdetr_imagenet_backbone_only(hub_cache):
    """RT-DETR's paper starts from an ImageNet ResNet-vd: ``pretrained="backbone"`` takes timm's ResNet-D weights
    (its own hub id) into the backbone; the encoder, decoder and heads stay freshly initialised."""
    torch.manual_seed(4)
    shape = dict(build_config("rtdetr_test").backbone_kwargs)  # the test preset's narrow ResNet-18-D
    cnn = timm.create_model("resnet18d", pretrained=False, **shape).eval()
    with torch.no_grad():
        for name, b in cnn.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
    hub_cache.put("timm/resnet18d.ra2_in1k", {"model.safetensors": safetensors_of(cnn)})
    torch.manual_seed(0)
    fresh = create_model("rtdetr_test")
    torch.manual_seed(0)
    ours, report = create_model_and_report("rtdetr_test", pretrained="backbone")
    assert report.source == "hf-hub:timm/resnet18d.ra2_in1k" and not report.reinitialized
    assert any("backbone only" in n for n in report.notes) and any("fc.weight" in n for n in report.notes)
    assert any("kept as initialised" in n and "layer1.0.downsample" in n for n in report.notes)
    rest = [k for k in fresh.state_dict() if not k.startswith("backbone.")]
    assert rest and all(torch.equal(ours.state_dict()[k], fresh.state_dict()[k]) for k in rest)
    # PResNet's extra first-stage shortcut starts as the identity: the backbone is timm's ImageNet network
    features = timm.create_model("resnet18d", pretrained=False, features_only=True, **shape).eval()
    features.load_state_dict({k: v for k, v in cnn.state_dict().items() if not k.startswith("fc.")})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(ours.eval().backbone(x), features(x), strict=True):
            assert (a - b).abs().max().item() <= 1e-4 * b.abs().max().item()


def test_uncached_repo_offline_is_one_line_naming_the_repo_and_the_fix(hub_cache):
    with pytest.raises(CheckpointError) as e:
        create_model("vit_test", checkpoint="hf-hub:timm/vit_tiny_patch16_224.augreg_in21k")
    message = str(e.value)
    assert "hf-hub:timm/vit_tiny_patch16_224.augreg_in21k is not in the Hugging Face cache" in message
    assert "HF_HUB_OFFLINE=1" in message and "models--timm--vit_tiny_patch16_224.augreg_in21k/snapshots" in message
    assert "\n" not in message


def test_unknown_repo_and_file_are_named_with_near_names(hub_cache):
    with pytest.raises(CheckpointError, match="did you mean microsoft/cvt-13"):
        create_model("cvt_13", checkpoint="hf-hub:microsoft/cvt13")
    hub_cache.put("facebook/detr-resnet-50", {"model.safetensors": lambda p: p.write_bytes(b"")})
    with pytest.raises(CheckpointError, match=r"model\.safetensor not in its cached snapshot.*did you mean "
                                              r"model\.safetensors"):
        create_model("detr_test", checkpoint="hf-hub:facebook/detr-resnet-50/model.safetensor")
    with pytest.raises(CheckpointError, match="not a hub id"):
        create_model("detr_test", checkpoint="hf-hub:detr-resnet-50")


def test_pretrained_needs_known_weights():
    with pytest.raises(Exception, match="no pretrained weights are known for 'vit_test'"):
        create_model("vit_test", pretrained=True)
    with pytest.raises(Exception, match="has no timm backbone"):
        create_model("vit_test", pretrained="backbone")


def test_cli_checkpoint_takes_a_hub_id(hub_cache, tmp_path):
    """`--model.init_args.checkpoint hf-hub:ORG/REPO` reaches create_model through the task, as a path does."""
    from vitkit.trainer import run_lightning_cli

    weights = create_model("vit_digits")
    hub_cache.put("someone/vit-digits", {"model.safetensors": safetensors_of(weights)})
    cli = run_lightning_cli(["fit", "-c", "configs/vit/digits.yaml", "--trainer.fast_dev_run", "1",
                             "--trainer.accelerator", "cpu", f"--trainer.default_root_dir={tmp_path}",
                             "--model.init_args.checkpoint", "hf-hub:someone/vit-digits"])
    assert cli.model.load_report.source == "hf-hub:someone/vit-digits"
    assert len(cli.model.load_report.loaded) == len(weights.state_dict())


def test_the_tables_timm_repos_are_timms_own():
    """Every timm/ repo of the table is one timm itself knows (a typo would only show online otherwise)."""
    from timm.models import get_pretrained_cfg

    from vitkit.weights.hub import known_repos

    timm_repos = [r for r in known_repos() if r.startswith("timm/")]
    assert len(timm_repos) >= 10
    assert all(get_pretrained_cfg(r.removeprefix("timm/")).hf_hub_id == r for r in timm_repos)


def test_cli_hub_id_not_cached_is_one_line(hub_cache, tmp_path, capsys):
    from vitkit.cli import main

    code = main(["fit", "-c", "configs/vit/digits.yaml", "--trainer.fast_dev_run", "1", "--trainer.accelerator", "cpu",
                 f"--trainer.default_root_dir={tmp_path}", "--model.init_args.checkpoint", "hf-hub:someone/vit-digits"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("vitkit: error: hf-hub:someone/vit-digits is not in the Hugging Face cache")
    assert "Traceback" not in "\n".join(err)
