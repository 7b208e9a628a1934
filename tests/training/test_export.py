"""``vitkit export --ckpt CKPT --out model.safetensors``: the trained model of each task in a file that carries its
preset and config, from which ``create_model(checkpoint=...)`` alone rebuilds a model with identical outputs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from vitkit import create_model
from vitkit.cli import main
from vitkit.tasks.shell import load_task


def _inputs(model) -> tuple:
    cfg = model.config
    if type(model).__name__ == "ImageTransformer":
        return torch.randint(0, 256, (2, cfg.in_chans, cfg.img_size, cfg.img_size)), torch.tensor([1, 7])
    size = 48 if type(model).__name__ == "DETR" else cfg.img_size
    return (torch.randn(2, getattr(cfg, "in_chans", 3), size, size),)


@pytest.mark.parametrize("task", ["classification", "generation", "detection"])
def test_export_round_trip_gives_identical_outputs(task, trained_checkpoints, tmp_path):
    out = tmp_path / "model.safetensors"
    assert main(["export", "--ckpt", str(trained_checkpoints[task]), "--out", str(out)]) == 0
    trained = load_task(trained_checkpoints[task]).model.eval()
    rebuilt = create_model(checkpoint=out).eval()  # no preset name, no config: the file says it all
    assert rebuilt.config == trained.config
    torch.manual_seed(0)
    inputs = _inputs(trained)
    with torch.no_grad():
        expected, got = trained(*inputs), rebuilt(*inputs)
    if isinstance(expected, dict):
        assert expected.keys() == got.keys()
        assert all(torch.equal(expected[k], got[k]) for k in expected if isinstance(expected[k], torch.Tensor))
    else:
        assert torch.equal(expected, got)
    with safe_open(str(out), framework="pt") as f:
        metadata = f.metadata()
    assert json.loads(metadata["vitkit.class_names"]) == list(load_task(trained_checkpoints[task]).class_names)
    assert metadata["vitkit.preset"] == load_task(trained_checkpoints[task]).hparams["model"]


def test_export_refuses_another_file_type(trained_checkpoints, tmp_path, capsys):
    assert main(["export", "--ckpt", str(trained_checkpoints["classification"]), "--out",
                 str(tmp_path / "model.pth")]) == 2
    assert "name it <something>.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "model.pth").exists()
