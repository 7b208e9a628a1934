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

import logging
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from vitkit.errors import ConfigError
from vitkit.tasks.layer_decay import layer_decay_scale
from vitkit.tasks.optim import warmup_cosine_scheduler
from vitkit.tasks.prediction_writer import ClassificationPredictionWriter
from vitkit.tasks.reports import summary, write_csv
from vitkit.tasks.shell import TaskShell

log = logging.getLogger(__name__)


class ClassificationTask(TaskShell):
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
            too (``val_ema/acc1``); ``None``: off. ema_warmup: ramp the decay up early on (short runs need it):
            ``true`` timm's ramp, or a number of steps (RT-DETR's ramp; ``vitkit.tasks.ema``).
        layer_decay: layer-wise lr decay factor (e.g. 0.75): ViT, CvT and timm models; ``None``: off.
        drop_path_rate: stochastic-depth rate for a named model (overrides the preset's); ``None``: the preset's.
        compile, grad_checkpointing, nonfinite_loss, allow_large_inputs: the switches every task has
            (``vitkit.tasks.shell``).
    """

    MONITOR = ("val/acc1", "max", "best-epoch{epoch:03d}-acc{val/acc1:.4f}")

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
        ema_warmup: bool | int = True,
        layer_decay: float | None = None,
        drop_path_rate: float | None = None,
        compile: bool | dict[str, Any] = False,
        grad_checkpointing: bool = False,
        nonfinite_loss: Literal["stop", "skip"] = "stop",
        allow_large_inputs: bool = False,
    ) -> None:
        super().__init__()
        if drop_path_rate is not None and isinstance(model, nn.Module):
            raise ConfigError("drop_path_rate overrides a named model's preset, but a ready nn.Module was given",
                              "build the module with the stochastic depth you want")
        overrides = dict(model_kwargs or {})
        if drop_path_rate is not None:
            overrides["drop_path_rate"] = drop_path_rate
        self.init_shell(model, class_names=class_names, num_classes=num_classes, in_chans=in_chans,
                        img_size=img_size, model_kwargs=overrides, checkpoint=checkpoint, compile=compile,
                        grad_checkpointing=grad_checkpointing, nonfinite_loss=nonfinite_loss,
                        allow_large_inputs=allow_large_inputs)
        self.num_classes = num_classes or _num_outputs(self.model)
        self.class_names = self.class_names or [str(i) for i in range(self.num_classes)]
        self._layer_scale = layer_decay_scale(self.model, layer_decay) if layer_decay else None
        self.mixup = build_mixup(self.hparams, self.num_classes)
        self.init_ema(ema_decay, ema_warmup)
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
        # per-class accuracy and confusions of the raw model (`report_confusion`); metric states stay out of
        # state_dict, so checkpoints are unchanged
        self.confusion = nn.ModuleDict({s: MulticlassConfusionMatrix(self.num_classes) for s in ("val", "test")})

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor | None:
        images, labels = batch["image"], batch["label"]
        if self.mixup is not None and self.mixup.mixup_enabled:
            if len(labels) % 2:
                raise ConfigError(f"mixup/cutmix pair each image with another: the batch size must be even, got "
                                  f"{len(labels)}", "change --data.batch_size to an even number")
            images, targets = self.mixup(images, labels)  # (B, C, H, W) mixed, (B, K) soft targets
            logits = self(images)
            loss = torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()
        else:
            logits = self(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        checked = self.check_loss(loss, batch_idx)
        if checked is not None:  # a skipped batch's NaN stays out of the epoch's averages
            self._log("train", loss, logits, labels)
        return checked

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.model)
        if self.ema is not None:
            self._evaluate(batch, "val_ema", self.ema_model())

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.model)
        if self.ema is not None:
            self._evaluate(batch, "test_ema", self.ema_model())

    def on_train_epoch_start(self) -> None:
        off = self.hparams.mixup_off_epoch
        if self.mixup is not None and off is not None and self.current_epoch >= off:
            self.mixup.mixup_enabled = False

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
        if stage in self.confusion:
            self.confusion[stage].update(logits.detach(), labels)

    def on_validation_epoch_end(self) -> None:
        self.report_confusion("val")

    def on_test_epoch_end(self) -> None:
        self.report_confusion("test")

    def report_confusion(self, stage: str) -> Tensor:
        """The ``stage``'s confusion matrix ``(K, K)`` (rows: true class, columns: predicted; summed over processes),
        written to ``<run>/evaluation/{stage}_confusion_matrix.csv|png`` with ``{stage}_per_class_accuracy.csv``
        (rewritten at each validation); after a test, per-class accuracy is also logged. Resets the counts."""
        matrix = self.confusion[stage].compute().cpu()  # (K, K) on every process: it synchronises
        self.confusion[stage].reset()
        folder = self.report_folder()
        if folder is None or not matrix.sum():
            return matrix
        from vitkit.viz.evaluation import confusion_matrix_figure

        support = matrix.sum(dim=1)  # (K,) images per true class
        accuracy = (matrix.diag() / support.clamp(min=1)).where(support > 0, torch.nan).tolist()
        names = list(self.class_names)
        write_csv(folder / f"{stage}_per_class_accuracy.csv", ["class", "images", "correct", "accuracy"],
                  [[n, int(s), int(c), a] for n, s, c, a in zip(names, support, matrix.diag(), accuracy, strict=True)])
        write_csv(folder / f"{stage}_confusion_matrix.csv", ["true \\ predicted", *names],
                  [[n, *row] for n, row in zip(names, matrix.tolist(), strict=True)])
        overall = float(matrix.diag().sum() / matrix.sum())
        epoch = f", epoch {self.current_epoch}" if stage == "val" else ""
        confusion_matrix_figure(matrix.numpy(), names, folder / f"{stage}_confusion_matrix.png",
                                title=f"{stage} confusion matrix{epoch}: accuracy {overall:.3f} on "
                                      f"{int(matrix.sum())} images")
        if stage == "test":
            log.info("%s\nconfusion matrix and tables: %s", summary("test per-class accuracy", names, accuracy),
                     folder)
        return matrix

    def _log(self, stage: str, loss: Tensor, logits: Tensor, labels: Tensor) -> None:
        n = len(labels)
        train = stage == "train"  # evaluation losses are averaged over all processes; accuracies sync themselves
        self.log(f"{stage}/loss", loss, on_step=train, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=not train)
        for (metric_stage, k), key in self.metric_keys.items():
            if metric_stage == stage:
                metric = self.metrics[key]
                metric(logits, labels)
                self.log(f"{stage}/acc{k}", metric, on_step=False, on_epoch=True, prog_bar=k == 1, batch_size=n)

    def lr_scale(self, name: str) -> float:
        return self._layer_scale(name) if self._layer_scale is not None else 1.0

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.param_groups(hp.lr), lr=hp.lr, betas=tuple(hp.betas))
        return {"optimizer": optimizer, "lr_scheduler": warmup_cosine_scheduler(
            self.trainer, optimizer, warmup_epochs=hp.warmup_epochs, min_lr_ratio=hp.min_lr_ratio)}

    def extra_callbacks(self) -> list[Callback]:
        return [ClassificationPredictionWriter()]


def build_mixup(hparams: Any, num_classes: int):
    """``timm.data.Mixup`` for the task's switches, or ``None`` when mixup and cutmix are both off."""
    if hparams.mixup_alpha < 0 or hparams.cutmix_alpha < 0:
        raise ConfigError(f"mixup_alpha={hparams.mixup_alpha} / cutmix_alpha={hparams.cutmix_alpha} must be ≥ 0",
                          "use 0 to switch either off (DeiT: 0.8 / 1.0)")
    if hparams.mixup_alpha == 0 and hparams.cutmix_alpha == 0:
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=hparams.mixup_alpha, cutmix_alpha=hparams.cutmix_alpha, prob=hparams.mixup_prob,
                 switch_prob=hparams.mixup_switch_prob, label_smoothing=hparams.label_smoothing,
                 num_classes=num_classes)


def _num_outputs(model: nn.Module) -> int:
    n = getattr(model, "num_classes", None)
    if not n:
        raise ConfigError("cannot tell the number of classes of the given model", "pass num_classes")
    return int(n)
