"""Autoregressive image generation: maximum-likelihood training of the Image Transformer (Parmar et al. 2018).

Batches are the datamodule's ``task="generation"`` dicts: ``{"image": uint8 (B, C, H, W), "label": (B,) long}``.
The loss is the negative log-likelihood of every sub-pixel under the model's 256-way categorical; it is reported as
bits per dimension, ``NLL in nats / (H·W·C·ln 2)`` (8 bits/dim is a uniform guess). At each validation a grid of
samples is logged to TensorBoard and saved as ``samples/epoch<E>-step<S>.png`` in the run directory (rank zero only).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitkit.errors import ConfigError
from vitkit.models import ImageTransformer
from vitkit.models.sampling import sample
from vitkit.tasks.optim import warmup_cosine_scheduler
from vitkit.tasks.shell import TaskShell
from vitkit.viz.sample_grid import image_grid, save_image_grid

log = logging.getLogger(__name__)


def bits_per_dim(logits: Tensor, images: Tensor) -> Tensor:
    """Per-image bits/dim ``(B,)``: ``-Σ log p(x_i) / (H·W·C·ln 2)`` for logits ``(B, 256, C, H, W)``."""
    nats = F.cross_entropy(logits.float(), images.long(), reduction="none")  # (B, C, H, W)
    return nats.flatten(1).mean(dim=1) / math.log(2)  # (B,)


class GenerationTask(TaskShell):
    """Train and evaluate an Image Transformer; sample grids at each validation.

    Args:
        model: an Image Transformer preset name or a ready ``ImageTransformer``.
        num_classes, class_names, in_chans, img_size: filled from the datamodule by the CLI; with a preset name,
            ``in_chans`` and ``img_size`` size the model, and ``num_classes`` makes it class-conditional when
            ``conditional`` is set.
        conditional: condition on the batches' labels (a class embedding added at every position).
        model_kwargs: config overrides for a named model (e.g. ``{"attention": "local_2d"}``).
        checkpoint: initial weights for a named model.
        lr, betas, weight_decay, warmup_epochs, min_lr_ratio: AdamW with linear warm-up then cosine decay.
        num_samples: images in the validation sample grid (0: no grid).
        temperature: sampling temperature of the grid.
        sample_seed: seed of the grid, the same at every validation so epochs can be compared.
        compile, grad_checkpointing, nonfinite_loss, allow_large_inputs: the switches every task has
            (``vitkit.tasks.shell``).
    """

    MONITOR = ("val/bpd", "min", "best-epoch{epoch:03d}-bpd{val/bpd:.4f}")

    def __init__(
        self,
        model: str | nn.Module = "image_transformer_digits",
        *,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        in_chans: int | None = None,
        img_size: int | None = None,
        conditional: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        checkpoint: str | None = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.98),
        weight_decay: float = 0.0,
        warmup_epochs: float = 1.0,
        min_lr_ratio: float = 0.01,
        num_samples: int = 16,
        temperature: float = 1.0,
        sample_seed: int = 0,
        compile: bool | dict[str, Any] = False,
        grad_checkpointing: bool = False,
        nonfinite_loss: Literal["stop", "skip"] = "stop",
        allow_large_inputs: bool = False,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"temperature={temperature}", "the sampling temperature must be > 0 (1 = the model's "
                              "distribution)")
        self.init_shell(model, class_names=class_names, num_classes=num_classes if conditional else 0,
                        in_chans=in_chans, img_size=img_size, model_kwargs=model_kwargs, checkpoint=checkpoint,
                        compile=compile, grad_checkpointing=grad_checkpointing, nonfinite_loss=nonfinite_loss,
                        allow_large_inputs=allow_large_inputs)
        if not isinstance(self.model, ImageTransformer):
            raise ConfigError(f"GenerationTask needs an ImageTransformer, got {type(self.model).__name__}",
                              "use an image_transformer_* preset (`vitkit models 'image_transformer*'`)")
        self.conditional = self.model.config.num_classes > 0
        k = self.model.config.num_classes
        self.class_names = self.class_names or [str(i) for i in range(k)]

    def forward(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.model(images, labels if self.conditional else None)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor | None:
        bpd, loss = self._bpd_and_loss(batch)
        checked = self.check_loss(loss, batch_idx)
        if checked is not None:  # a skipped batch's NaN stays out of the epoch's averages
            self._log_stage("train", bpd, loss, len(batch["image"]))
        return checked

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        bpd, loss = self._bpd_and_loss(batch)
        self._log_stage(stage, bpd, loss, len(batch["image"]))
        return loss

    def _bpd_and_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        images = batch["image"]
        if self.conditional and "label" not in batch:
            raise ConfigError("a class-conditional model needs labelled batches, and this dataset has no labels",
                              "set --model.init_args.conditional false, or train on a labelled dataset")
        bpd = bits_per_dim(self(images, batch.get("label")), images).mean()
        return bpd, bpd * math.log(2)  # the loss: mean NLL in nats per sub-pixel, the quantity minimised

    def _log_stage(self, stage: str, bpd: Tensor, loss: Tensor, n: int) -> None:
        train = stage == "train"  # evaluation values are averaged over all processes
        self.log(f"{stage}/bpd", bpd, on_step=train, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=not train)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=n, sync_dist=not train)

    def on_validation_epoch_end(self) -> None:
        trainer = self.trainer
        if self.hparams.num_samples <= 0 or trainer.sanity_checking or trainer.fast_dev_run:
            return
        log_dir = trainer.log_dir  # on every process: Lightning broadcasts it from rank zero
        if trainer.is_global_zero:
            name = f"epoch{self.current_epoch:03d}-step{self.global_step:06d}.png"  # several validations per epoch
            self.write_sample_grid(Path(log_dir or trainer.default_root_dir) / "samples" / name)

    def sample_images(self, num: int, *, temperature: float = 1.0, seed: int = 0) -> tuple[Tensor, int]:
        """``num`` samples ``uint8 (B, C, H, W)`` and the grid width: one column per class when conditional."""
        generator = torch.Generator().manual_seed(seed)
        k = self.model.config.num_classes
        labels = torch.arange(num) % k if self.conditional else None
        images = sample(self.model, num, temperature=temperature, y=labels, generator=generator)
        return images, (min(k, num) if self.conditional else math.ceil(math.sqrt(num)))

    def write_sample_grid(self, path: Path) -> Path:
        images, nrow = self.sample_images(self.hparams.num_samples, temperature=self.hparams.temperature,
                                          seed=self.hparams.sample_seed)
        for logger in self.loggers:
            if hasattr(logger.experiment, "add_image"):  # TensorBoard
                logger.experiment.add_image("samples", image_grid(images, nrow=nrow), self.global_step)
        out = save_image_grid(images, path, nrow=nrow)
        log.info("sample grid written to %s", out)
        return out

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.param_groups(hp.lr), lr=hp.lr, betas=tuple(hp.betas))
        return {"optimizer": optimizer, "lr_scheduler": warmup_cosine_scheduler(
            self.trainer, optimizer, warmup_epochs=hp.warmup_epochs, min_lr_ratio=hp.min_lr_ratio)}
