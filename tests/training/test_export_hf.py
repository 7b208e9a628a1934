"""``vitkit export --format hf``: a model folder (config.json + model.safetensors + README.md model card) from which
``vitkit.from_pretrained`` rebuilds the trained model bit for bit; the same folder read from a Hub cache; and
``push_to_hub``'s argument handling (uploading itself needs network: not tested here)."""

import json

import pytest
import torch

import vitkit
from tests.training.test_export import _inputs
from vitkit.cli import main
from vitkit.errors import ConfigError, MissingFileError
from vitkit.tasks.shell import load_task
from vitkit.weights import CheckpointError


def _outputs(model, inputs):
    with torch.no_grad():
        out = model.eval()(*inputs)
    return out if isinstance(out, dict) else {"out": out}


@pytest.mark.parametrize("task", ["classification", "generation", "detection"])
def test_hf_folder_round_trip_is_bit_identical(task, trained_checkpoints, tmp_path):
    out = tmp_path / "folder"
    assert main(["export", "--ckpt", str(trained_checkpoints[task]), "--format", "hf", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    trained = load_task(trained_checkpoints[task])
    rebuilt = vitkit.from_pretrained(out)
    assert rebuilt.config == trained.model.config
    ours, theirs = trained.model.state_dict(), rebuilt.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    torch.manual_seed(0)
    inputs = _inputs(trained.model)
    expected, got = _outputs(trained.model, inputs), _outputs(rebuilt, inputs)
    assert all(torch.equal(expected[k], got[k]) for k in expected if isinstance(expected[k], torch.Tensor))
    info = vitkit.weights.folder.read_folder(out)
    assert info["preset"] == trained.hparams["model"] and info["class_names"] == list(trained.class_names)
    assert info["preprocessing"]["image_size"] == trained.preprocessing["image_size"]
    card = (out / "README.md").read_text()
    assert f"Preset: `{trained.hparams['model']}`" in card and "## Preprocessing" in card
    assert info["training"]["global_step"] == 2 and "## Training" in card
    if task == "classification":
        assert "val/acc1" in info["training"]["metrics"] and "| val/acc1 |" in card


def test_folder_from_a_hub_cache_and_a_new_head(tmp_path, hub_cache):
    folder = vitkit.save_pretrained(vitkit.create_model("vit_test"), tmp_path / "f", preset="vit_test",
                                    class_names=[str(i) for i in range(10)])
    files = {p.name: (lambda dst, src=p: dst.write_bytes(src.read_bytes())) for p in folder.iterdir()}
    hub_cache.put("someone/vit-test", files)
    x = torch.randn(1, 3, 32, 32)
    local, remote = vitkit.from_pretrained(folder).eval(), vitkit.from_pretrained("hf-hub:someone/vit-test").eval()
    assert torch.equal(local(x), remote(x))
    assert torch.equal(vitkit.from_pretrained("someone/vit-test").eval()(x), local(x))
    five = vitkit.from_pretrained(folder, num_classes=5)  # a new head; the rest loaded
    assert five.head.out_features == 5 and torch.equal(five.patch_embed.proj.weight, local.patch_embed.proj.weight)
    assert torch.equal(vitkit.create_model(checkpoint=folder / "model.safetensors").eval()(x), local(x))


def test_bad_folders_and_push_arguments(tmp_path, monkeypatch):
    with pytest.raises(MissingFileError, match="has no config.json"):
        vitkit.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "cvt"}))  # a transformers folder
    with pytest.raises(CheckpointError, match="not a vitkit model folder"):
        vitkit.from_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="builds VisionTransformer, not CvT"):
        vitkit.save_pretrained(vitkit.create_model("cvt_test"), tmp_path / "x", preset="vit_test")
    with pytest.raises(MissingFileError, match="lacks"):
        vitkit.push_to_hub(tmp_path, "someone/repo")
    folder = vitkit.save_pretrained(vitkit.create_model("vit_test"), tmp_path / "ok", preset="vit_test")
    with pytest.raises(ConfigError, match="ORG/REPO"):
        vitkit.push_to_hub(folder, "hf-hub:someone/repo")
    calls = []

    class FakeApi:  # records what would be sent; the real upload needs network and a token
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, private, exist_ok):
            calls.append(("create", repo_id, private, exist_ok))

        def upload_folder(self, folder_path, repo_id, commit_message):
            calls.append(("upload", folder_path, repo_id))
            return f"https://huggingface.co/{repo_id}/commit/0"

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    assert vitkit.push_to_hub(folder, "someone/repo", private=True, token="t").endswith("someone/repo/commit/0")
    assert calls == [("token", "t"), ("create", "someone/repo", True, True), ("upload", str(folder), "someone/repo")]
