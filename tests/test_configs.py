"""Every config under configs/ runs one training and one validation batch on CPU.

Configs whose data is not on this machine (CIFAR files, ImageNet, COCO) run on the `fake` dataset; configs that ask
for GPUs and several devices run on one CPU process. Everything else is the config as written.
"""

from pathlib import Path

import pytest

from vitkit.trainer import run_lightning_cli

CONFIGS = sorted(p for p in (Path(__file__).parents[1] / "configs").rglob("*.yaml") if "bench" not in p.parts)
EMBEDDED = {"digits"}  # datasets that exist on every machine


def _one_batch_args(config: Path, tmp_path: Path) -> list[str]:
    text = config.read_text()
    args = ["fit", "-c", str(config), "--trainer.fast_dev_run", "1", "--trainer.accelerator", "cpu",
            "--trainer.devices", "1", "--trainer.strategy", "auto", f"--trainer.default_root_dir={tmp_path}"]
    if not any(f"dataset: {name}" in text for name in EMBEDDED):
        args += ["--data.dataset", "fake", "--data.root", "null", "--data.batch_size", "2", "--data.num_workers", "0"]
    return args


@pytest.mark.parametrize("config", CONFIGS, ids=[str(p.relative_to(p.parents[1])) for p in CONFIGS])
def test_config_runs_one_batch(config, tmp_path):
    assert config.read_text().startswith("# vitkit "), "each config starts with the command that runs it"
    cli = run_lightning_cli(_one_batch_args(config, tmp_path))
    assert cli.trainer.state.finished
    assert cli.trainer.callback_metrics, "the batch logged no metrics"
