"""Running one bench: every model through the same data, recipe and budget, every cost measured.

Per model: parameters; forward GFLOPs with attention (``bench.flops``); training and inference throughput and peak
training memory (``bench.measure``); then training under the budget (fresh seed, fresh datamodule: same
initialisation stream, same batches) while recording validation top-1 against training time (time in training
epochs, validation excluded), and a final validation of the final weights.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning import Callback, Trainer, seed_everything
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn

from vitkit.bench.config import BenchConfig, BenchConfigError
from vitkit.bench.flops import count_gflops
from vitkit.bench.measure import measure
from vitkit.data import VisionDataModule
from vitkit.models import is_model
from vitkit.tasks import ClassificationTask

log = logging.getLogger(__name__)


@dataclass
class ModelResult:
    model: str
    source: str  # "vitkit" preset or "timm"
    params: int
    gflops: float  # forward multiply-adds of one image, attention included
    train_img_s: float
    infer_img_s: float
    peak_mem_mb: float  # training step, above the model's own footprint
    final_top1: float  # validation top-1 of the final weights
    best_top1: float
    epochs: float  # epochs done (fractional)
    train_minutes: float
    minutes_to_target: float | None  # first validation at or above the target; None: not reached
    history: list[tuple[float, float, float]] = field(default_factory=list)  # (train minutes, epochs, top-1)
    measured: dict[str, Any] = field(default_factory=dict)  # device, precision, batch size, threads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _History(Callback):
    """Validation top-1 at every validation of the fit (mid-epoch ones too, with ``val_check_interval``) against
    the time spent training so far, validation excluded, and the epochs done (fractional: a time budget usually
    stops mid-epoch)."""

    def __init__(self) -> None:
        self.points: list[tuple[float, float, float]] = []  # (train minutes, epochs done, val top-1)
        self.seconds = 0.0
        self.batches = 0
        self._start: float | None = None

    def epochs(self, trainer: Trainer) -> float:
        return self.batches / max(1, trainer.num_training_batches)

    def on_train_batch_start(self, trainer: Trainer, module: Any, batch: Any, batch_idx: int) -> None:
        if self._start is None:
            self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.batches += 1

    def _stop(self) -> None:
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self._start = None

    def on_validation_start(self, trainer: Trainer, module: Any) -> None:
        self._stop()

    def on_train_epoch_end(self, trainer: Trainer, module: Any) -> None:
        self._stop()

    def on_validation_end(self, trainer: Trainer, module: Any) -> None:
        acc = trainer.callback_metrics.get("val/acc1")
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or acc is None:
            return
        self.points.append((self.seconds / 60, self.epochs(trainer), float(acc)))


def datamodule(cfg: BenchConfig) -> VisionDataModule:
    return VisionDataModule(**{"seed": cfg.seed, **cfg.data})


def build_task(name: str, cfg: BenchConfig, dm: VisionDataModule) -> ClassificationTask:
    return ClassificationTask(name, num_classes=dm.num_classes, class_names=dm.class_names, in_chans=dm.in_chans,
                              img_size=dm.image_size, model_kwargs=cfg.model_kwargs.get(name), **cfg.task)


def check_models(cfg: BenchConfig, dm: VisionDataModule) -> None:
    """Build every model once and check it is a plain classifier for this data, before anything is trained."""
    for name in cfg.models:
        model = build_task(name, cfg, dm).model  # unknown names: UnknownModelError with near names
        x = torch.zeros(2, dm.in_chans, dm.image_size, dm.image_size)
        for training in (True, False):
            model.train(training)
            with torch.no_grad():
                out = model(x)
            if not isinstance(out, torch.Tensor) or out.shape != (2, dm.num_classes):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise BenchConfigError(
                    f"{name} is not a plain image classifier: in {'training' if training else 'evaluation'} mode "
                    f"its output for 2 images is {got}, expected logits (2, {dm.num_classes})",
                    "pick a classifier (not a feature extractor, e.g. num_classes=0; not a model with extra training "
                    "heads)")


def run_bench(cfg: BenchConfig, out: Path, *, progress: bool = False) -> list[ModelResult]:
    dm = datamodule(cfg)
    check_models(cfg, dm)
    return [_run_one(name, cfg, out, progress) for name in cfg.models]


def _run_one(name: str, cfg: BenchConfig, out: Path, progress: bool) -> ModelResult:
    seed_everything(cfg.seed, verbose=False)
    dm = datamodule(cfg)
    task = build_task(name, cfg, dm)
    shape = (dm.in_chans, dm.image_size, dm.image_size)
    params = sum(p.numel() for p in task.model.parameters())
    gflops = count_gflops(task.model, shape)
    log.info("%s: %.2fM params, %.3f GFLOPs; measuring throughput", name, params / 1e6, gflops)
    measured = _measure(name, cfg, dm, task.model)
    history = _History()
    budget = cfg.budget
    trainer = Trainer(
        max_epochs=budget.epochs if budget.epochs is not None else -1,
        max_time={"seconds": budget.minutes * 60} if budget.minutes is not None else None,
        default_root_dir=out / name, logger=CSVLogger(out, name=name, version=""), callbacks=[history],
        enable_progress_bar=progress, enable_model_summary=False, **cfg.trainer,
    )
    trainer.fit(task, datamodule=dm)
    final = float(trainer.validate(task, datamodule=dm, verbose=False)[0]["val/acc1"])
    points = history.points
    target = cfg.target_accuracy
    reached = [m for m, _, acc in points if target is not None and acc >= target]
    return ModelResult(
        model=name, source="vitkit" if is_model(name) else "timm", params=params, gflops=gflops,
        train_img_s=measured["train_img_s"], infer_img_s=measured["infer_img_s"],
        peak_mem_mb=measured["peak_mem_mb"], final_top1=final, best_top1=max([a for *_, a in points] + [final]),
        epochs=round(history.epochs(trainer), 3), train_minutes=history.seconds / 60,
        minutes_to_target=reached[0] if reached else None, history=points,
        measured={k: measured[k] for k in ("device", "precision", "batch_size", "threads")},
    )


def _measure(name: str, cfg: BenchConfig, dm: VisionDataModule, model: nn.Module) -> dict[str, Any]:
    accelerator = cfg.trainer.get("accelerator", "auto")
    cuda = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    precision = str(cfg.trainer.get("precision", "32-true"))
    spec = {
        "model": name, "input": [dm.in_chans, dm.image_size, dm.image_size], "device": "cuda" if cuda else "cpu",
        "batch_size": cfg.throughput.batch_size, "steps": cfg.throughput.steps, "warmup": cfg.throughput.warmup,
        "precision": "bf16-mixed" if precision.startswith("bf16") else "32-true",
        "build": {"num_classes": dm.num_classes, "in_chans": dm.in_chans, "img_size": dm.image_size,
                  **(cfg.model_kwargs.get(name) or {})},
    }
    return measure(spec)
