"""Image classification: cross-entropy training of any vitkit or timm classifier.

The network is injected (an ``nn.Module``) or named (a vitkit preset, else a timm model). Batches are the
datamodule's ``{"image": (B, C, H, W) float, "label": (B,) long}``.

The training recipe's switches, all off by default, as in timm / DeiT (Touvron et al. 2021): mixup (Zhang et al.
2018) and cutmix (Yun et al. 2019) through ``timm.data.Mixup`` (soft targets, label smoothing folded in), disabled
from ``mixup_off_epoch`` on; label smoothing; a model EMA (``timm.utils.ModelEmaV3``) validated beside the raw
model (``val_ema/*``); layer-wise lr decay (``tasks.layer_decay``); a stochastic-depth override. RandAugment and
random erasing act on the data (``VisionDataModule(rand_augment=..., random_erasing=...)``).
"""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from vitkit.tasks.builders import build_classifier
from vitkit.tasks.checkpoints import checkpoint_callbacks, record_task
from vitkit.tasks.layer_decay import layer_decay_scale
from vitkit.tasks.optim import adamw_warmup_cosine, param_groups
from vitkit.tasks.prediction_writer import ClassificationPredictionWriter
from vitkit.training.nonfinite import checked_loss
from vitkit.training.switches import compile_in_place, enable_grad_checkpointing


class ClassificationTask(L.LightningModule):
    """Train, evaluate and predict with an image classifier.

    Args:
        model: a vitkit preset name, a timm model name, or a ready ``nn.Module``.
        num_classes, class_names, in_chans, img_size: filled from the datamodule by the CLI; with a model name
            they size the model (head, input channels, position grid). Class names are saved in checkpoints.
        model_kwargs: config overrides for a named model (e.g. ``{"drop_path_rate": 0.1}``).
        checkpoint: initial weights for a named model (vitkit, Lightning, timm layouts; new heads re-initialised).
        lr: peak learning rate of AdamW, reached after ``warmup_epochs`` of linear warm-up, then cosine decay to
            ``lr * min_lr_ratio``.
        weight_decay: AdamW decay, not applied to biases, norms, position embeddings and tokens.
        label_smoothing: cross-entropy label smoothing (Szegedy et al. 2016).
        mixup_alpha, cutmix_alpha: Beta(α, α) of mixup / cutmix; 0 disables each (DeiT: 0.8 / 1.0).
        mixup_prob: probability of mixing a batch; mixup_switch_prob: of cutmix rather than mixup when both are on.
        mixup_off_epoch: from this epoch on, train on unmixed batches (timm's ``--mixup-off-epoch``).
        ema_decay: keep an exponential moving average of the weights with this decay (e.g. 0.9998) and validate it
            too (``val_ema/acc1``); ``None``: off. ema_warmup: ramp the decay up early on (short runs need it).
        layer_decay: layer-wise lr decay factor (e.g. 0.75): ViT, CvT and timm models; ``None``: off.
        drop_path_rate: stochastic-depth rate for a named model (overrides the preset's); ``None``: the preset's.
        compile: compile the model with ``torch.compile`` when the trainer sets it up: ``true``, or the options of
            ``torch.compile`` (e.g. ``{mode: max-autotune}``; ``vitkit.training.switches``).
        grad_checkpointing: recompute each Transformer block in the backward pass instead of storing its activations.
        nonfinite_loss: on a NaN/infinite training loss, ``stop`` with the step and batch, or ``skip`` the batch
            (``vitkit.training.nonfinite``).
    """

    def __init__(
        self,
        model: str | nn.Module = "vit_digits",
        *,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        in_chans: int | None = None,
        img_size: int | None = None,
        model_kwargs: dict[str, Any] | None = None,
        checkpoint: str | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_epochs: float = 5.0,
        min_lr_ratio: float = 0.01,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        mixup_prob: float = 1.0,
        mixup_switch_prob: float = 0.5,
        mixup_off_epoch: int | None = None,
        ema_decay: float | None = None,
        ema_warmup: bool = True,
        layer_decay: float | None = None,
        drop_path_rate: float | None = None,
        compile: bool | dict[str, Any] = False,
        grad_checkpointing: bool = False,
        nonfinite_loss: Literal["stop", "skip"] = "stop",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"] if isinstance(model, nn.Module) else None)
        if isinstance(model, nn.Module):
            if drop_path_rate is not None:
                raise ValueError("drop_path_rate overrides a named model's preset; for a ready nn.Module, build it "
                                 "with the stochastic depth you want")
            self.model = model
        else:
            overrides = dict(model_kwargs or {})
            if drop_path_rate is not None:
                overrides["drop_path_rate"] = drop_path_rate
            sized = {"num_classes": num_classes, "in_chans": in_chans, "img_size": img_size}
            sized.update({k: overrides.pop(k) for k in list(sized) if k in overrides})  # model_kwargs win
            self.model = build_classifier(model, checkpoint=checkpoint, **sized, **overrides)
        if grad_checkpointing:
            enable_grad_checkpointing(self.model)
        self.num_classes = num_classes or _num_outputs(self.model)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        self.mixup = build_mixup(self.hparams, self.num_classes)
        # The EMA copy is kept out of the module tree (and of state_dict, so that Lightning checkpoints still load
        # as plain weights); it is saved under the checkpoint's "model_ema" entry.
        object.__setattr__(self, "ema", build_ema(self.model, ema_decay, warmup=ema_warmup))
        self._ema_step = -1
        top_k = min(5, self.num_classes)
        stages = ("train", "val", "test") + (("val_ema", "test_ema") if self.ema is not None else ())
        self.metric_keys = {
            (stage, k): f"{stage}_acc{k}" for stage in stages for k in sorted({1, top_k})
            if not (stage == "train" and k != 1)
        }
        self.metrics = nn.ModuleDict({
            key: MulticlassAccuracy(self.num_classes, top_k=k, average="micro")
            for (_, k), key in self.metric_keys.items()
        })

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor | None:
        images, labels = batch["image"], batch["label"]
        if self.mixup is not None and self.mixup.mixup_enabled:
            if len(labels) % 2:
                raise ValueError(f"mixup/cutmix pair each image with another: the batch size must be even, got "
                                 f"{len(labels)}; change --data.batch_size")
            images, targets = self.mixup(images, labels)  # (B, C, H, W) mixed, (B, K) soft targets
            logits = self(images)
            loss = torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()
        else:
            logits = self(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        checked = checked_loss(self, loss, batch_idx, policy=self.hparams.nonfinite_loss)
        if checked is not None:  # a skipped batch's NaN stays out of the epoch's averages
            self._log("train", loss, logits, labels)
        return checked

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.model)
        if self.ema is not None:
            self._evaluate(batch, "val_ema", self._ema_model())

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.model)
        if self.ema is not None:
            self._evaluate(batch, "test_ema", self._ema_model())

    def on_train_epoch_start(self) -> None:
        off = self.hparams.mixup_off_epoch
        if self.mixup is not None and off is not None and self.current_epoch >= off:
            self.mixup.mixup_enabled = False

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None and self.global_step != self._ema_step:  # once per optimiser step
            self._ema_model().requires_grad_(False)
            self.ema.update(self.model, step=self.global_step)
            self._ema_step = self.global_step

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        probs = self(batch["image"]).softmax(dim=-1)  # (B, K)
        conf, pred = probs.max(dim=-1)
        out = {"pred": pred, "confidence": conf}
        if "label" in batch:
            out["label"] = batch["label"]
        return out

    def _evaluate(self, batch: dict[str, Tensor], stage: str, model: nn.Module) -> None:
        images, labels = batch["image"], batch["label"]
        logits = model(images)  # (B, K)
        self._log(stage, F.cross_entropy(logits, labels), logits, labels)

    def _log(self, stage: str, loss: Tensor, logits: Tensor, labels: Tensor) -> None:
        n = len(labels)
        train = stage == "train"  # evaluation losses are averaged over all processes; accuracies sync themselves
        self.log(f"{stage}/loss", loss, on_step=train, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=not train)
        for (metric_stage, k), key in self.metric_keys.items():
            if metric_stage == stage:
                metric = self.metrics[key]
                metric(logits, labels)
                self.log(f"{stage}/acc{k}", metric, on_step=False, on_epoch=True, prog_bar=k == 1, batch_size=n)

    def _ema_model(self) -> nn.Module:
        """The EMA weights' module, on the task's device (Lightning moves only registered modules)."""
        module = self.ema.module
        if next(module.parameters()).device != self.device:
            module.to(self.device)
        return module

    def configure_model(self) -> None:
        if self.hparams.compile:
            compile_in_place(self.model, self.hparams.compile)

    def configure_optimizers(self) -> dict:
        scale = layer_decay_scale(self.model, self.hparams.layer_decay) if self.hparams.layer_decay else None
        groups = param_groups(self.model, weight_decay=self.hparams.weight_decay, lr_scale=scale)
        return adamw_warmup_cosine(self.trainer, groups, lr=self.hparams.lr, betas=self.hparams.betas,
                                   warmup_epochs=self.hparams.warmup_epochs, min_lr_ratio=self.hparams.min_lr_ratio)

    def configure_callbacks(self) -> list[Callback]:
        best_and_last = checkpoint_callbacks("val/acc1", mode="max", filename="best-epoch{epoch:03d}-acc{val/acc1:.4f}")
        return [*best_and_last, ClassificationPredictionWriter()]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        record_task(self, checkpoint)
        checkpoint["class_names"] = self.class_names
        if self.ema is not None:
            checkpoint["model_ema"] = self.ema.module.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.class_names = checkpoint.get("class_names", self.class_names)
        if self.ema is not None and "model_ema" in checkpoint:
            self.ema.module.load_state_dict(checkpoint["model_ema"])


def build_mixup(hparams: Any, num_classes: int):
    """``timm.data.Mixup`` for the task's switches, or ``None`` when mixup and cutmix are both off."""
    if hparams.mixup_alpha < 0 or hparams.cutmix_alpha < 0:
        raise ValueError(f"mixup_alpha={hparams.mixup_alpha} / cutmix_alpha={hparams.cutmix_alpha} must be ≥ 0")
    if hparams.mixup_alpha == 0 and hparams.cutmix_alpha == 0:
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=hparams.mixup_alpha, cutmix_alpha=hparams.cutmix_alpha, prob=hparams.mixup_prob,
                 switch_prob=hparams.mixup_switch_prob, label_smoothing=hparams.label_smoothing,
                 num_classes=num_classes)


def build_ema(model: nn.Module, decay: float | None, *, warmup: bool):
    """``timm.utils.ModelEmaV3`` of ``model`` (a frozen copy), or ``None`` when ``decay`` is ``None``."""
    if decay is None:
        return None
    if not 0.0 < decay < 1.0:
        raise ValueError(f"ema_decay={decay} must lie in (0, 1), e.g. 0.9998; leave it unset to disable the EMA")
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=decay, use_warmup=warmup)


def _num_outputs(model: nn.Module) -> int:
    n = getattr(model, "num_classes", None)
    if not n:
        raise ValueError("cannot tell the number of classes of the given model; pass num_classes")
    return int(n)
