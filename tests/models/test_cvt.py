"""vitkit's CvT against Hugging Face's CvtForImageClassification: same parameters, same logits after loading its
weights through create_model; the convolutional projections feed the one shared Attention."""

import ast
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import CvtConfig, CvtForImageClassification

import vitkit
from vitkit import create_model
from vitkit.build import create_model_and_report
from vitkit.layers import Attention, capture_attention
from vitkit.models import CvT, CvTConfig, CvTStageConfig, build_config


def hf_config(cfg: CvTConfig) -> CvtConfig:
    """The Hugging Face config of the same architecture (stochastic depth off: it differs in HF, see the model)."""
    st = cfg.stages
    return CvtConfig(
        num_channels=cfg.in_chans, num_labels=cfg.num_classes,
        patch_sizes=[s.patch_size for s in st], patch_stride=[s.patch_stride for s in st],
        patch_padding=[s.patch_padding for s in st], embed_dim=[s.dim for s in st],
        num_heads=[s.num_heads for s in st], depth=[s.depth for s in st], mlp_ratio=[s.mlp_ratio for s in st],
        attention_drop_rate=[0.0] * len(st), drop_rate=[0.0] * len(st), drop_path_rate=[0.0] * len(st),
        qkv_bias=[s.qkv_bias for s in st], cls_token=[cfg.class_token and i == len(st) - 1 for i in range(len(st))],
        kernel_qkv=[s.kernel_qkv for s in st], padding_kv=[s.kernel_qkv // 2 for s in st],
        stride_kv=[s.stride_kv for s in st], padding_q=[s.kernel_qkv // 2 for s in st],
        stride_q=[s.stride_q for s in st],
    )


def random_hf(name: str, seed: int = 0, **overrides) -> CvtForImageClassification:
    """HF model of preset ``name`` with every tensor perturbed (norms, BatchNorm statistics included), so that a
    mixed-up key would change the logits."""
    torch.manual_seed(seed)
    model = CvtForImageClassification(hf_config(build_config(name, **overrides))).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if "running_var" in key:
                t.uniform_(0.5, 1.5, generator=g)
            elif t.is_floating_point():
                t.add_(0.05 * torch.randn(t.shape, generator=g))
    return model


def max_diff(model: CvT, ref: CvtForImageClassification, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (model.eval()(x) - ref(x).logits).abs().max().item()


@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
def test_tiny_preset_equals_hf(tmp_path, suffix):
    ref = random_hf("cvt_test")
    path = tmp_path / f"hf{suffix}"
    save_file(ref.state_dict(), str(path)) if suffix == ".safetensors" else torch.save(ref.state_dict(), path)
    model, report = create_model_and_report("cvt_test", checkpoint=path)
    assert not report.reinitialized and not report.skipped
    assert max_diff(model, ref, torch.randn(2, 3, 32, 32)) <= 1e-4
    assert max_diff(model, ref, torch.randn(2, 3, 45, 37)) <= 1e-4  # odd sizes: ceil-strided key/value grids


def test_cvt_13_equals_hf(tmp_path):
    ref = random_hf("cvt_13")
    torch.save(ref.state_dict(), tmp_path / "pytorch_model.bin")
    model = create_model("cvt_13", checkpoint=tmp_path / "pytorch_model.bin")
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters()) == 19_997_480
    assert max_diff(model, ref, torch.randn(1, 3, 224, 224)) <= 1e-4


@pytest.mark.parametrize(("name", "params"), [("cvt_13", 19_997_480), ("cvt_21", 31_622_696),
                                              ("cvt_w24", 277_196_392)])
def test_parameter_counts_equal_hf(name, params):
    with torch.device("meta"):
        ours = create_model(name)
        theirs = CvtForImageClassification(hf_config(build_config(name)))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters()) == params


def test_fused_and_reference_attention_agree():
    torch.manual_seed(0)
    model = create_model("cvt_test").eval()
    ref = create_model("cvt_test", fused_attn=False).eval()
    ref.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5)


def test_convolutional_projections_feed_the_shared_attention():
    model = create_model("cvt_test").eval()
    blocks = [b for s in model.stages for b in s.blocks]
    assert all(type(b.attn) is Attention for b in blocks)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), capture_attention(model) as weights:
        features = model.forward_features(x)
        logits = model(x)  # forward is forward_head(forward_features): every block computes every token
    # stage 0: 8×8 queries over a 4×4 key/value grid; stage 1: class token + 4×4 queries over class token + 2×2
    expected = {"stages.0.blocks.0.attn": [(2, 1, 64, 16)] * 2, "stages.1.blocks.0.attn": [(2, 2, 17, 5)] * 2,
                "stages.1.blocks.1.attn": [(2, 2, 17, 5)] * 2}
    assert {k: [tuple(w.shape) for w in v] for k, v in weights.items()} == expected
    assert torch.equal(logits, model.forward_head(features))


def _called_names(path: Path) -> set[str]:
    """Names of every function or method called in ``path`` (code only: docstrings and comments do not count)."""
    calls = (n.func for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call))
    return {f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "") for f in calls}


def test_one_softmax_attention_in_the_codebase():
    """Attention is computed only in layers/attention.py: nothing else calls SDPA, einsum or MultiheadAttention, and
    nothing else in layers/ or models/ calls softmax (tasks may, to turn logits into probabilities) — but
    layers/deformable.py, the one other attention operator (ARCHITECTURE.md), whose softmax normalises the weights of
    its sampled points, not QKᵀ."""
    root = Path(vitkit.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path == root / "layers" / "attention.py":
            continue
        called = _called_names(path)
        forbidden = {"scaled_dot_product_attention", "einsum", "MultiheadAttention"}
        if path.parent.name in ("layers", "models") and path != root / "layers" / "deformable.py":
            forbidden.add("softmax")
        offenders += [f"{path.relative_to(root)}: {name}" for name in sorted(called & forbidden)]
    assert not offenders
    assert {"scaled_dot_product_attention", "softmax"} <= _called_names(root / "layers" / "attention.py")


def test_recomputed_activation_gives_the_same_gradients():
    torch.manual_seed(0)
    model = create_model("cvt_test", recompute_act=True, act_layer="quick_gelu").train()
    plain = create_model("cvt_test", recompute_act=False, act_layer="quick_gelu").train()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    for m in (model, plain):
        m(x).square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), plain.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4), name


def test_regularisers_are_random_in_training_only_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = create_model("cvt_test", drop_rate=0.1, attn_drop_rate=0.1, drop_path_rate=0.2, drop_path_scope="all")
    x = torch.randn(4, 3, 32, 32)
    out = model.train()(x)
    assert not torch.allclose(out, model(x))
    torch.nn.functional.cross_entropy(out, torch.arange(4)).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # The head reads the class token only, and in the last block the class token's query bypasses conv_q.
    assert no_grad == [f"stages.1.blocks.1.conv_q.{n}" for n in ("conv.weight", "bn.weight", "bn.bias")]
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))


def test_drop_path_rates():
    cfg = build_config("cvt_13", drop_path_rate=0.1)
    rates = cfg.block_drop_path_rates()
    assert [len(r) for r in rates] == [1, 2, 10] and rates[0] == [0.0] and rates[1] == [0.0, 0.0]
    assert rates[2][0] == 0.0 and rates[2][-1] == pytest.approx(0.1)
    flat = sum(build_config("cvt_13", drop_path_rate=0.1, drop_path_scope="all").block_drop_path_rates(), [])
    assert len(flat) == 13 and flat[-1] == pytest.approx(0.1) and flat[1] > 0


@pytest.mark.parametrize(("name", "shape"), [("cvt_digits", (2, 1, 8, 8)), ("cvt_small_32", (2, 3, 32, 32)),
                                             ("cvt_test", (2, 3, 32, 32))])
def test_small_presets_run(name, shape):
    model = create_model(name).eval()
    with torch.no_grad():
        assert model(torch.randn(shape)).shape == (2, 10)
        assert model.forward_head(model.forward_features(torch.randn(shape)), pre_logits=True).shape == (
            2, model.num_features)


def test_reset_classifier_and_no_weight_decay():
    model = create_model("cvt_test")
    model.reset_classifier(3)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    model.reset_classifier(0)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 32)
    assert "cls_token" in model.no_weight_decay()


def test_config_from_dicts_and_bad_configs():
    cfg = CvTConfig(stages=[{"dim": 8, "depth": 1, "num_heads": 2}], num_classes=4, img_size=16)
    assert isinstance(cfg.stages, tuple) and isinstance(cfg.stages[0], CvTStageConfig)
    assert CvT(cfg)(torch.randn(1, 3, 16, 16)).shape == (1, 4)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        CvTStageConfig(dim=10, depth=1, num_heads=3)
    with pytest.raises(ValueError, match="non-empty tuple"):
        CvTConfig(stages=())
    with pytest.raises(ValueError, match="drop_path_scope"):
        build_config("cvt_test", drop_path_scope="first")
    with pytest.raises(ValueError, match="too small"):
        create_model("cvt_test")(torch.randn(1, 3, 2, 2))
