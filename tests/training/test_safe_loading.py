"""A checkpoint crafted to run code when unpickled is refused, running nothing, on every path that reads training
checkpoints: resuming (``vitkit fit --ckpt_path``), ``vitkit export`` and the commands that rebuild a task
(``load_task``: sample, detect, attention). ``create_model(checkpoint=...)`` is covered in tests/models/test_vit.py.
A genuine checkpoint goes through the same paths (test_resume.py, test_export.py)."""

from __future__ import annotations

import pytest
import torch
from forked import ROOT, run_forked

from vitkit.cli import main
from vitkit.tasks.shell import load_task
from vitkit.weights import CheckpointError


class Payload:
    """Unpickling this calls ``open(marker, "w")``: a file appearing means the checkpoint ran code."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def crafted(trained_checkpoints, tmp_path):
    """A real training checkpoint of the classification task with the payload added to its hyper-parameters."""
    checkpoint = torch.load(trained_checkpoints["classification"], weights_only=True)
    checkpoint["hyper_parameters"]["note"] = Payload(tmp_path / "ran-code")
    torch.save(checkpoint, tmp_path / "crafted.ckpt")
    return tmp_path / "crafted.ckpt", tmp_path / "ran-code"


def test_resuming_from_a_crafted_checkpoint_is_refused(crafted, tmp_path, capfd):
    path, marker = crafted
    args = ["fit", "-c", str(ROOT / "configs/vit/digits.yaml"), "--trainer.max_epochs", "1",
            "--trainer.enable_progress_bar", "false", f"--trainer.default_root_dir={tmp_path}",
            "--ckpt_path", str(path)]
    assert run_forked(args) == 2
    err = capfd.readouterr().err
    assert f"vitkit: error: {path}: refused to load" in err and "Traceback" not in err, err[-2000:]
    assert not marker.exists()


def test_export_and_load_task_refuse_a_crafted_checkpoint(crafted, tmp_path, capsys):
    path, marker = crafted
    assert main(["export", "--ckpt", str(path), "--out", str(tmp_path / "m.safetensors")]) == 2
    assert "refused to load" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="refused to load"):
        load_task(path)
    assert not marker.exists() and not (tmp_path / "m.safetensors").exists()
    torch.load(path, weights_only=False)  # the payload is live: unpickling it without the guard runs it
    assert marker.exists()


def test_resuming_from_a_truncated_checkpoint_names_it(trained_checkpoints, tmp_path, capfd):
    path = tmp_path / "cut.ckpt"
    data = trained_checkpoints["classification"].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    args = ["fit", "-c", str(ROOT / "configs/vit/digits.yaml"), f"--trainer.default_root_dir={tmp_path}",
            "--ckpt_path", str(path)]
    assert run_forked(args) == 2
    err = capfd.readouterr().err
    assert f"vitkit: error: {path}: not a readable PyTorch checkpoint" in err and "Traceback" not in err, err[-2000:]
