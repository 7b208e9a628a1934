"""Two CPU processes (DDP over gloo) train and validate like one process given the same global batch, for each task.

``--data.global_batch_size`` makes one process train on batches of 2B and each of two processes on B; the sharded
sampler gives step i of the two processes exactly the images of step i of the one (``vitkit.data.sampling``), with
the same augmentation. Validation sees the same images once each (``limit_val_batches`` counts per process, so the
two processes together cover what the one covers); losses are averaged over processes, accuracies and bits/dim
synchronised, DETR's box count all-reduced and its detections gathered without repeats. What is left is floating
point: the gradient all-reduce sums in another order, and DETR normalises its classification loss per process.

The two-process runs start under ``torchrun`` (one launch for the three tasks; ``ddp_driver.py``); the one-process
references are forked children (``forked.py``). The Lightning launcher path (``vitkit fit`` with ``devices: 2``,
as configs/vit/digits_ddp.yaml asks) is checked by a slow test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from forked import ROOT, run_forked, validation_rows

DDP = ["--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.devices", "2"]
ONE = ["--trainer.accelerator", "cpu", "--trainer.devices", "1"]
COMMON = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2",
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
          "--trainer.num_sanity_val_steps", "0", "--trainer.check_val_every_n_epoch", "1"]
TASKS = {
    "classification": (["-c", "configs/vit/digits.yaml", "--data.global_batch_size", "32"],
                       {"val/acc1": 1e-6, "val/loss": 1e-4}),
    "generation": (["-c", "configs/image_transformer/digits.yaml", "--data.global_batch_size", "16",
                    "--model.init_args.model", "image_transformer_test", "--model.init_args.num_samples", "0",
                    "--model.init_args.model_kwargs", '{"drop_rate": 0.0}'],
                   {"val/bpd": 1e-4, "val/loss": 1e-4}),
    # predictions from the targets, perturbed (tests/oracle.py): a non-zero AP that must be the same on two processes
    "detection": (["-c", "configs/detr/digits.yaml", "--model.class_path", "oracle.OracleDetectionTask",
                   "--trainer.max_time", "null", "--data.dataset", "coco",
                   "--data.image_size", "48", "--data.train_ann", "annotations/instances_train.json",
                   "--data.val_ann", "annotations/instances_val.json", "--data.train_images", "train",
                   "--data.val_images", "val", "--data.global_batch_size", "8", "--model.init_args.model", "detr_test",
                   "--model.init_args.model_kwargs", '{"num_queries": 6, "drop_rate": 0.0, "attn_drop_rate": 0.0}'],
                  # val/loss is left out: its class term is a weighted mean per process (as the official DETR's), and
                  # the oracle's confident logits make the per-process means differ by a few percent; the box losses
                  # are normalised by the box count of all processes and must agree
                  {"val/loss_bbox": 2e-3, "val/loss_giou": 2e-3, "val/AP": 1e-6, "val/AP50": 1e-6}),
}
WRITTEN_ONCE = {"classification": ["metrics.csv", "events.out.tfevents.*", "config.yaml", "checkpoints/last.ckpt"],
                "generation": ["metrics.csv", "events.out.tfevents.*", "config.yaml", "checkpoints/last.ckpt"],
                "detection": ["metrics.csv", "events.out.tfevents.*", "predictions_val.json", "checkpoints/last.ckpt"]}


def _args(task: str, root, tmp_path, devices: list[str]) -> list[str]:
    args, _ = TASKS[task]
    args = [a.replace("configs/", f"{ROOT}/configs/") for a in args]
    if task == "detection":
        args += ["--data.root", str(root)]
    name = f"{task}_{'ddp' if devices is DDP else 'one'}"
    return ["fit", *args, *COMMON, *devices, "--run_name", name, f"--trainer.default_root_dir={tmp_path}"]


def _run_group(command: list[str], *, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` in a new process group, the whole group killed on timeout (ranks and their workers)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, **kwargs)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"{command} did not finish in {timeout} s:\n{err[-4000:]}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def test_two_processes_validate_like_one(tmp_path, small_detection_root):
    commands = [_args(task, small_detection_root, tmp_path, DDP) for task in TASKS]
    (tmp_path / "commands.json").write_text(json.dumps(commands))
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
              str(ROOT / "tests/training/ddp_driver.py"), str(tmp_path / "commands.json")]
    done = _run_group(launch, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    for task, (_, tolerances) in TASKS.items():
        assert run_forked(_args(task, small_detection_root, tmp_path, ONE)) == 0
        one = validation_rows(tmp_path / f"{task}_one" / "version_0")[-1]
        two = validation_rows(tmp_path / f"{task}_ddp" / "version_0")[-1]
        for key, rtol in tolerances.items():
            assert two[key] == pytest.approx(one[key], rel=rtol, abs=1e-6), (task, key, one, two)
        if task == "detection":
            assert two["val/AP"] > 0.2, two  # a real AP, not 0 == 0
        # rank zero alone writes: one run version, and each file once (a second rank's logger would add its own)
        assert [p.name for p in (tmp_path / f"{task}_ddp").iterdir()] == ["version_0"]
        for pattern in WRITTEN_ONCE[task]:
            assert len(list((tmp_path / f"{task}_ddp" / "version_0").glob(pattern))) == 1, (task, pattern)


@pytest.mark.slow
def test_lightning_launches_the_ddp_config_itself(tmp_path):
    """``vitkit fit -c configs/vit/digits_ddp.yaml``: Lightning starts the second process (no torchrun)."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)
    command = [sys.executable, "-m", "vitkit.cli", "fit", "-c", str(ROOT / "configs/vit/digits_ddp.yaml"),
               "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2",
               "--trainer.enable_progress_bar", "false", f"--trainer.default_root_dir={tmp_path}"]
    done = _run_group(command, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in done.stderr
    rows = validation_rows(tmp_path / "vit_digits_ddp" / "version_0")
    assert rows and 0.0 <= rows[-1]["val/acc1"] <= 1.0
