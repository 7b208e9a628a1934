"""Image classification: cross-entropy training of any vitkit or timm classifier.

The network is injected (an ``nn.Module``) or named (a vitkit preset, else a timm model). Batches are the
datamodule's ``{"image": (B, C, H, W) float, "label": (B,) long}``.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from vitkit.tasks.builders import build_classifier
from vitkit.tasks.checkpoints import record_task
from vitkit.tasks.optim import param_groups, warmup_cosine


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
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"] if isinstance(model, nn.Module) else None)
        if isinstance(model, nn.Module):
            self.model = model
        else:
            self.model = build_classifier(
                model, num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                checkpoint=checkpoint, **(model_kwargs or {}),
            )
        self.num_classes = num_classes or _num_outputs(self.model)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        top_k = min(5, self.num_classes)
        self.metrics = nn.ModuleDict({
            f"{stage}_acc{k}": MulticlassAccuracy(self.num_classes, top_k=k, average="micro")
            for stage in ("train", "val", "test") for k in sorted({1, top_k})
            if not (stage == "train" and k != 1)
        })

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        probs = self(batch["image"]).softmax(dim=-1)  # (B, K)
        conf, pred = probs.max(dim=-1)
        out = {"pred": pred, "confidence": conf, "probs": probs}
        if "label" in batch:
            out["label"] = batch["label"]
        return out

    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        images, labels = batch["image"], batch["label"]
        logits = self(images)  # (B, K)
        smoothing = self.hparams.label_smoothing if stage == "train" else 0.0
        loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(labels))
        for name, metric in self.metrics.items():
            if name.startswith(stage):
                metric(logits, labels)
                key = name.replace("_", "/", 1)
                self.log(key, metric, on_step=False, on_epoch=True, prog_bar=name.endswith("acc1"),
                         batch_size=len(labels))
        return loss

    def configure_optimizers(self) -> dict:
        groups = param_groups(self.model, weight_decay=self.hparams.weight_decay)
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr, betas=tuple(self.hparams.betas))
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):  # a time budget with no epoch limit: warm up, then keep the rate
            total = 10**9
        epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else None
        per_epoch = total / epochs if epochs else total
        warmup = int(self.hparams.warmup_epochs * per_epoch) if epochs else 0
        schedule = warmup_cosine(warmup, int(total), min_ratio=self.hparams.min_lr_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_callbacks(self) -> list[Callback]:
        best = ModelCheckpoint(monitor="val/acc1", mode="max", save_last=True,
                               filename="best-epoch{epoch:03d}-acc{val/acc1:.4f}", auto_insert_metric_name=False)
        return [best]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        record_task(self, checkpoint)
        checkpoint["class_names"] = self.class_names

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.class_names = checkpoint.get("class_names", self.class_names)


def _num_outputs(model: nn.Module) -> int:
    n = getattr(model, "num_classes", None)
    if not n:
        raise ValueError("cannot tell the number of classes of the given model; pass num_classes")
    return int(n)
