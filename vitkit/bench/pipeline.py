"""Is training bound by the input pipeline or by the model? The same Lightning run twice: fed by the datamodule
(workers, decoding, augmentation, collation, host-to-device copy) and fed one of its batches over and over.

``fit_throughput(cli_args, feed=...)`` builds trainer, task and datamodule exactly as ``vitkit fit`` does from
``cli_args`` (a config plus ``--key value`` overrides, without the ``fit`` sub-command), trains for the trainer's
``max_steps`` and times the steps after the first ``skip`` (worker start-up, cuDNN tuning, allocator growth) on the
device clock, stopping early once the timed steps pass ``budget_s``. With ``feed="pipeline"`` the datamodule feeds
the steps; with ``feed="repeated"`` one batch it produced is repeated, which leaves the model's step alone: its
images/s is the ceiling the pipeline can reach. GPU utilisation is sampled during the timed steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import torch
from lightning import Callback

from vitkit.bench.gpu import UtilisationSampler, synchronize


@dataclass
class FitThroughput:
    images_per_s: float
    steps: int  # timed steps
    gpu_utilisation: float | None  # mean %, None where it cannot be read


class _StepMeter(Callback):
    def __init__(self, skip: int, budget_s: float, device: torch.device) -> None:
        self.skip, self.budget_s, self.device = skip, budget_s, device
        self.images = self.steps = 0
        self.start = self.elapsed = 0.0
        self.sampler = UtilisationSampler(device)
        self.utilisation: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == self.skip:
            synchronize(self.device)
            self.start = time.perf_counter()
            self.sampler.start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx < self.skip or self.elapsed:
            return
        self.images += len(batch["label"])
        self.steps += 1
        if batch_idx + 1 >= trainer.max_steps or time.perf_counter() - self.start > self.budget_s:
            self._finish()  # here, not at the end of training: checkpoints are written after the last step
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        if self.steps and not self.elapsed:
            self._finish()

    def _finish(self) -> None:
        synchronize(self.device)
        self.elapsed = time.perf_counter() - self.start
        self.utilisation = self.sampler.stop()


class _Repeated:
    """``batch`` ``n`` times, as a loader (a plain list would be taken for a list of loaders)."""

    def __init__(self, batch, n: int) -> None:
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return (self.batch for _ in range(self.n))


def fit_throughput(cli_args: list[str], *, feed: Literal["pipeline", "repeated"], skip: int,
                   budget_s: float) -> FitThroughput:
    """Images/s of ``vitkit fit`` with ``cli_args`` over the timed steps (see the module docstring)."""
    from vitkit.trainer import run_lightning_cli

    cli = run_lightning_cli(cli_args, run=False)
    trainer, task, data = cli.trainer, cli.model, cli.datamodule
    meter = _StepMeter(skip, budget_s, trainer.strategy.root_device)
    trainer.callbacks.append(meter)
    if feed == "pipeline":
        trainer.fit(task, datamodule=data)
    else:
        data.setup("fit")
        batch = data.on_after_batch_transfer(next(iter(data.train_dataloader())), 0)  # the model's input
        trainer.fit(task, train_dataloaders=_Repeated(batch, trainer.max_steps))
    if meter.steps == 0:
        raise RuntimeError(f"no step after the first {skip} was timed: raise --trainer.max_steps")
    return FitThroughput(meter.images / meter.elapsed, meter.steps, meter.utilisation)
