"""Lightning CLI wiring for ``vitkit fit|validate|test|predict``.

The task is chosen in the config by ``model.class_path``; the data is always ``VisionDataModule``. The data's
``num_classes``, ``class_names``, ``in_chans`` and ``image_size`` (as ``img_size``) are linked into the task once
the datamodule is built. A task with a ``category_ids`` argument (detection: the annotation file's id of each label)
left unset gets the data's after both are built — not through a link, which would hand the argument to tasks that do
not take it when Lightning rebuilds a task from a checkpoint's hyper-parameters. A class count or category ids given
for the task that disagree with the data are refused. Every run writes under
``runs/<name>/version_<n>/``: ``checkpoints/`` (best and last), ``metrics.csv``, TensorBoard events and the resolved
``config.yaml``.

When the data does not say what size its images are (an image folder of photos of many sizes) and none is given,
the model's design size is adopted.

Robustness the CLI adds to every run (``vitkit.training``): checkpoints are written atomically and read without
running pickled code (``--ckpt_path`` included); each process's random states travel in checkpoints;
``--checkpoint_every_n_steps N`` rewrites ``last.ckpt`` every N steps; ``--ckpt_path last`` resumes from the newest
``last.ckpt`` among the run's earlier versions, whatever the logger (``vitkit.training.resume``), or starts afresh
when there is none, and logs into a new version.

Parsing errors come back as ``argparse.ArgumentError`` (the parsers do not exit), for ``vitkit.cli`` to print as one
line.
"""

from __future__ import annotations

import logging
import pickle
import re
import sys
from pathlib import Path
from typing import Any

from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from vitkit.data import DataError, VisionDataModule
from vitkit.training.atomic import AtomicCheckpointIO
from vitkit.training.resume import StepCheckpoint, resolve_last
from vitkit.training.rng_state import RngStateCallback
from vitkit.weights.io import load_pickle_safely

log = logging.getLogger(__name__)

# datamodule attribute → task argument (the task's name differs where Lightning would see two hparams disagree:
# the datamodule's `image_size` argument may be None while its resolved attribute is not)
LINKED = {"num_classes": "num_classes", "class_names": "class_names", "in_chans": "in_chans", "image_size": "img_size"}
LOGGERS = ("CSVLogger", "TensorBoardLogger")


class VitkitCLI(LightningCLI):
    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        kwargs.setdefault("exit_on_error", False)  # errors raise; vitkit.cli prints them as one line
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_name", type=str, default="vitkit",
                            help="runs are written to <trainer.default_root_dir>/<run_name>/version_<n>")
        parser.add_argument("--checkpoint_every_n_steps", type=int | None, default=None,
                            help="also rewrite checkpoints/last.ckpt every N optimiser steps (mid-epoch resume)")
        for source, target in LINKED.items():
            parser.link_arguments(f"data.{source}", f"model.init_args.{target}", apply_on="instantiate")

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads a --ckpt_path file's hyper-parameters with torch.load(weights_only=True) before anything
        # else; a file it refuses (pickled code) or cannot read surfaces as a raw torch traceback. Re-reading it the
        # way vitkit reads every checkpoint turns that into an error naming the file and what to do.
        try:
            super()._parse_ckpt_path()
        except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
            load_pickle_safely(self.config[self.config.subcommand]["ckpt_path"])  # raises CheckpointError
            raise e

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        # the links overwrite a class count given for the task (config or checkpoint): remember it to refuse a
        # disagreement with the data
        init_args = config.model.get("init_args") if hasattr(config.model, "get") else None
        self._given_classes = init_args.get("num_classes") if init_args is not None else None
        trainer = config.trainer
        if trainer.logger in (None, True):
            root = Path(trainer.default_root_dir or "runs")
            version = _next_version(root / config.run_name)
            trainer.logger = [
                {"class_path": f"lightning.pytorch.loggers.{cls}",
                 "init_args": {"save_dir": str(root), "name": config.run_name, "version": version}}
                for cls in LOGGERS
            ]

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's default, not one the user chose
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        trainer.callbacks.append(RngStateCallback())
        every = self._get(self.config, "checkpoint_every_n_steps") if self.subcommand == "fit" else None
        if every:
            trainer.callbacks.append(StepCheckpoint(every))
        return trainer

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        data = self.datamodule
        given, found = self._given_classes, data.num_classes
        if given is not None and given != found:
            raise DataError(f"the model is given num_classes={given} (config or checkpoint) but dataset "
                            f"{data.dataset_name!r} has {found} classes ({', '.join(data.class_names[:10])}"
                            f"{', ...' if found > 10 else ''})", "the class count comes from the data: drop "
                            "model.init_args.num_classes, or use the data the model was trained on (for COCO files: "
                            "check their \"categories\")")
        _fill_category_ids(self.model, data)
        data.adopt_image_size(getattr(self.model, "input_size", None))

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if subcommand == "fit" and kwargs.get("ckpt_path") == "last":
            kwargs["ckpt_path"] = resolve_last(self.trainer)
        return kwargs


def _fill_category_ids(task: LightningModule, data: VisionDataModule) -> None:
    """Give a task that takes ``category_ids`` the data's, unless it has its own; refuse ids that differ."""
    if "category_ids" not in task.hparams:
        return
    ids, given = list(data.category_ids), task.hparams["category_ids"]
    if given is None:
        task.hparams["category_ids"] = ids  # saved with the checkpoint and in hparams.yaml
        task.category_ids = ids
    elif list(given) != ids:
        raise DataError(f"the model is given category_ids={list(given)[:20]} but dataset {data.dataset_name!r} has "
                        f"{ids[:20]}", "drop model.init_args.category_ids (they come from the data), or use the "
                        "annotation file the model was trained with")


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
