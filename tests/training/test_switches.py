"""bf16-mixed, ``torch.compile`` and gradient checkpointing, each switched on from the command line/config for each
task, train and validate like the plain run: the same weights after two steps (checkpointing, compile) or the same
validation loss within bf16's precision (mixed precision). Plus, per family, the checkpointed model's outputs and
gradients equal the plain model's with dropout on, and the blocks really are recomputed.

Compilation uses the ``aot_eager`` backend (graph capture and the compiled autograd, without Inductor's C++
generation, which takes tens of seconds per model on a CPU); ``-m slow`` runs Inductor on the ViT.
"""

from __future__ import annotations

import pytest
import torch
from forked import run_forked, task_args, validation_rows
from torch import nn

from vitkit import create_model
from vitkit.weights.io import load_pickle_safely

COMMON = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
          "--trainer.deterministic", "true", "--trainer.enable_progress_bar", "false",
          "--trainer.enable_model_summary", "false", "--trainer.num_sanity_val_steps", "0",
          "--trainer.check_val_every_n_epoch", "1"]
SWITCHES = {
    "plain": [],
    "grad_checkpointing": ["--model.init_args.grad_checkpointing", "true"],
    "compile": ["--model.init_args.compile", '{"backend": "aot_eager"}'],
    "bf16": ["--trainer.precision", "bf16-mixed"],
}


def _fit(task: str, switch: str, root, detection_root) -> tuple[dict, dict]:
    name = f"{task}_{switch}"
    # (detection: unaugmented canvases, all of one size, else compilation is redone for each new image size)
    fixed = ["--data.augment", "none"] if task == "detection" else []
    args = ["fit", *task_args(task, detection_root), *fixed, *COMMON, *SWITCHES[switch], "--run_name", name,
            f"--trainer.default_root_dir={root}"]
    assert run_forked(args) == 0, name
    run = root / name / "version_0"
    return load_pickle_safely(run / "checkpoints" / "last.ckpt"), validation_rows(run)[-1]


@pytest.mark.parametrize("task", ["classification", "generation", "detection"])
def test_switched_runs_train_like_the_plain_one(task, tmp_path, small_detection_root):
    plain, plain_val = _fit(task, "plain", tmp_path, small_detection_root)
    weights = plain["state_dict"]
    for switch, atol in (("grad_checkpointing", 1e-6), ("compile", 1e-5)):
        ckpt, val = _fit(task, switch, tmp_path, small_detection_root)
        assert ckpt["hyper_parameters"][switch]  # the switch reached the task
        for key, value in weights.items():
            assert torch.allclose(ckpt["state_dict"][key], value, atol=atol, rtol=0), (switch, key)
        assert val["val/loss"] == pytest.approx(plain_val["val/loss"], rel=1e-4), switch
    ckpt, val = _fit(task, "bf16", tmp_path, small_detection_root)
    assert not all(torch.equal(ckpt["state_dict"][k], v) for k, v in weights.items()), "bf16 changed nothing"
    assert val["val/loss"] == pytest.approx(plain_val["val/loss"], rel=3e-2)


def _family_inputs(name: str) -> tuple[nn.Module, tuple]:
    overrides = {"drop_rate": 0.2} if name != "cvt_test" else {}
    model = create_model(name, **overrides).train()
    if name == "image_transformer_test":
        cfg = model.config
        return model, (torch.randint(0, 256, (2, cfg.in_chans, cfg.img_size, cfg.img_size)),)
    size = 32 if name != "detr_test" else 48
    return model, (torch.randn(2, 3, size, size),)


def _loss(out) -> torch.Tensor:
    if isinstance(out, dict):
        return sum(v.float().sum() for v in out.values() if isinstance(v, torch.Tensor))
    return out.float().sum()


@pytest.mark.parametrize("name", ["vit_test", "cvt_test", "image_transformer_test", "detr_test"])
def test_checkpointed_blocks_are_recomputed_with_the_same_outputs_and_gradients(name):
    plain, inputs = _family_inputs(name)
    checkpointed, _ = _family_inputs(name)
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.set_grad_checkpointing(True)
    calls = {"plain": 0, "checkpointed": 0}
    results = {}
    for label, model in (("plain", plain), ("checkpointed", checkpointed)):
        block = next(m for m in model.modules() if type(m).__name__ in ("Block", "CvTBlock", "DecoderLayer"))
        block.register_forward_pre_hook(lambda *_, label=label: calls.__setitem__(label, calls[label] + 1))
        torch.manual_seed(0)  # the same dropout masks in both models
        out = model(*inputs)
        _loss(out).backward()
        results[label] = (out, {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert calls == {"plain": 1, "checkpointed": 2}  # the block ran again in the backward pass
    (out, grads), (out_ck, grads_ck) = results["plain"], results["checkpointed"]
    assert _loss(out_ck).item() == _loss(out).item()
    assert grads.keys() == grads_ck.keys()
    for key, grad in grads.items():
        assert torch.allclose(grads_ck[key], grad, atol=1e-6, rtol=1e-5), key


@pytest.mark.slow
def test_inductor_compiled_vit_matches_eager():
    """What the tasks' ``compile`` switch does (``TaskShell.configure_model``: ``nn.Module.compile``, in place)."""
    model = create_model("vit_test").eval()
    x = torch.randn(2, 3, 32, 32)
    expected = model(x)
    model.compile()
    assert model._compiled_call_impl is not None and torch.allclose(model(x), expected, atol=1e-5)
    assert list(model.state_dict()) == list(create_model("vit_test").state_dict())  # names unchanged
