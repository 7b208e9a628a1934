"""Lightning CLI wiring for ``vitkit fit|validate|test|predict``.

The task is chosen in the config by ``model.class_path``; the data is always ``VisionDataModule``. The data's
``num_classes``, ``class_names``, ``in_chans`` and ``image_size`` (as ``img_size``) are linked into the task once
the datamodule is built. Every run writes under ``runs/<name>/version_<n>/``: ``checkpoints/`` (best and last),
``metrics.csv``, TensorBoard events and the resolved ``config.yaml``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from vitkit.data import VisionDataModule

# datamodule attribute → task argument (the task's name differs where Lightning would see two hparams disagree:
# the datamodule's `image_size` argument may be None while its resolved attribute is not)
LINKED = {"num_classes": "num_classes", "class_names": "class_names", "in_chans": "in_chans", "image_size": "img_size"}
LOGGERS = ("CSVLogger", "TensorBoardLogger")


class VitkitCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_name", type=str, default="vitkit",
                            help="runs are written to <trainer.default_root_dir>/<run_name>/version_<n>")
        for source, target in LINKED.items():
            parser.link_arguments(f"data.{source}", f"model.init_args.{target}", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.trainer
        if trainer.logger in (None, True):
            root = Path(trainer.default_root_dir or "runs")
            version = _next_version(root / config.run_name)
            trainer.logger = [
                {"class_path": f"lightning.pytorch.loggers.{cls}",
                 "init_args": {"save_dir": str(root), "name": config.run_name, "version": version}}
                for cls in LOGGERS
            ]


def _next_version(folder: Path) -> int:
    versions = [int(m.group(1)) for p in folder.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", p.name))]
    return max(versions, default=-1) + 1


def run_lightning_cli(args: list[str], *, run: bool = True) -> VitkitCLI:
    """Run ``vitkit <subcommand> ...``; returns the CLI object (trainer, model, datamodule) for callers."""
    return VitkitCLI(
        LightningModule,
        VisionDataModule,
        subclass_mode_model=True,
        args=None if args == sys.argv[1:] else args,  # Lightning warns when given both
        run=run,
        trainer_defaults={"default_root_dir": "runs"},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
