"""Object detection with DETR (Carion et al. 2020) or RT-DETR (Zhao et al. 2024): set-criterion training, COCO
evaluation, COCO-format results. The criterion follows the model family: DETR's set criterion (softmax with a
no-object class), or for an ``RTDETR`` the varifocal criterion with focal matching costs and contrastive denoising
queries (``vitkit.detection.rtdetr_criterion``, ``vitkit.detection.denoising``).

Batch contract (what the datamodule's detection mode provides):

- ``"image"``: float ``(B, 3, H, W)``, normalised, images padded to a common size;
- ``"pixel_mask"``: bool ``(B, H, W)``, ``True`` = real pixel, ``False`` = padding;
- ``"targets"``: one dict per image: ``"boxes"`` float ``(n, 4)`` normalised ``(cx, cy, w, h)`` relative to the
  unpadded image, ``"labels"`` long ``(n,)`` contiguous in ``0..K-1``, ``"image_id"`` int, ``"orig_size"``
  ``(height, width)`` of the image before any resize (``n`` may be 0).

Contiguous labels map back to the dataset's category ids through ``category_ids`` (``category_ids[i]`` is the id of
label ``i``; saved in checkpoints). Validation ground truth is the datamodule's ``coco_ground_truth(split)`` (a
``pycocotools.coco.COCO``, e.g. the annotation file with its crowd regions and areas) when it has one, else it is
built from the validation targets. The defaults are the paper's optimiser settings: AdamW, lr 1e-4, backbone lr
1e-5, weight decay 1e-4, gradient clipping at norm 0.1.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from vitkit.atomic import atomic_write_text
from vitkit.detection import (
    FocalCostMatcher,
    HungarianMatcher,
    RTDETRCriterion,
    SetCriterion,
    coco_eval,
    make_denoising_group,
    postprocess,
    to_coco_results,
)
from vitkit.detection.denoising import DenoisingGroup
from vitkit.errors import ConfigError
from vitkit.models import RTDETR
from vitkit.tasks.shell import TaskShell

log = logging.getLogger(__name__)
LOGGED_LOSSES = ("loss", "loss_ce", "loss_bbox", "loss_giou", "cardinality_error")
RTDETR_LOGGED_LOSSES = ("loss", "loss_vfl", "loss_bbox", "loss_giou", "cardinality_error")


class DetectionTask(TaskShell):
    """Train, evaluate and predict with a DETR detector.

    Args:
        model: a vitkit DETR or RT-DETR preset name (e.g. ``detr_small``, ``rtdetr_digits``) or a ready
            ``nn.Module`` with DETR's output dict.
        num_classes, class_names, in_chans, img_size: filled from the datamodule by the CLI. ``num_classes`` sizes
            the class head (plus no-object); ``img_size`` (the data's shorter side) does not size a detector.
        category_ids: dataset category id of each contiguous label; default ``0..K-1``.
        model_kwargs: DETR config overrides (e.g. ``{"num_queries": 20}``).
        checkpoint: initial weights (vitkit, official DETR or Hugging Face layout); with another class count only
            the class head is re-initialised, and the load report says so.
        lr, lr_backbone, weight_decay, grad_clip: AdamW settings; ``lr_backbone`` None = ``lr`` / 10 (the paper's
            1e-4 / 1e-5). ``grad_clip`` is the max gradient norm (Trainer's ``gradient_clip_val`` wins when set).
        lr_drop_epoch: multiply the learning rates by 0.1 after this many epochs (the paper: 200 of 300).
        warmup_steps: raise the learning rates linearly from 1/warmup_steps of their value to it over this many
            optimiser steps (0: none, as the paper). Helps higher rates than the paper's when training from scratch.
        freeze_backbone: train only the Transformer and heads (fine-tuning on small data).
        ema_decay, ema_warmup: keep an exponential moving average of the weights (``vitkit.tasks.ema``; RT-DETR's:
            0.9999 with a 2000-step ramp, ``ema_warmup: 2000``) and evaluate it beside the raw model with COCO AP
            (``val_ema/AP``, ``val_ema/AP50``, ...); ``None``: off. ``--ema`` of ``vitkit detect``, ``predict`` and
            ``export`` uses the EMA weights of a checkpoint.
        eos_coef, weight_ce, weight_bbox, weight_giou: criterion settings (matcher costs use the same weights).
        predictions_file: COCO-results JSON written under the run's log folder after each validation.
        compile, grad_checkpointing, nonfinite_loss, allow_large_inputs: the switches every task has
            (``vitkit.tasks.shell``).
    """

    MONITOR = ("val/AP", "max", "best-epoch{epoch:03d}-AP{val/AP:.4f}")

    def __init__(
        self,
        model: str | nn.Module = "detr_small",
        *,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        in_chans: int | None = None,
        img_size: int | None = None,
        category_ids: list[int] | None = None,
        model_kwargs: dict[str, Any] | None = None,
        checkpoint: str | None = None,
        lr: float = 1e-4,
        lr_backbone: float | None = None,
        weight_decay: float = 1e-4,
        grad_clip: float = 0.1,
        lr_drop_epoch: int | None = None,
        warmup_steps: int = 0,
        freeze_backbone: bool = False,
        ema_decay: float | None = None,
        ema_warmup: bool | int = True,
        eos_coef: float = 0.1,
        weight_ce: float = 1.0,
        weight_bbox: float = 5.0,
        weight_giou: float = 2.0,
        predictions_file: str | None = "predictions_val.json",
        compile: bool | dict[str, Any] = False,
        grad_checkpointing: bool = False,
        nonfinite_loss: Literal["stop", "skip"] = "stop",
        allow_large_inputs: bool = False,
    ) -> None:
        super().__init__()
        if num_classes is None and category_ids is not None:
            num_classes = len(category_ids)
        self.init_shell(model, class_names=class_names, num_classes=num_classes, in_chans=in_chans,
                        model_kwargs=model_kwargs, checkpoint=checkpoint, compile=compile,
                        grad_checkpointing=grad_checkpointing, nonfinite_loss=nonfinite_loss,
                        allow_large_inputs=allow_large_inputs)
        self.num_classes = int(num_classes or self.model.num_classes)
        self.category_ids = [int(c) for c in category_ids] if category_ids else list(range(self.num_classes))
        self.class_names = self.class_names or [str(c) for c in self.category_ids]
        if not len(self.category_ids) == len(self.class_names) == self.num_classes:
            raise ConfigError(f"num_classes={self.num_classes}, {len(self.category_ids)} category ids and "
                              f"{len(self.class_names)} class names disagree",
                              "they must describe the same classes: drop them and let the data set them")
        if warmup_steps < 0:
            raise ConfigError(f"warmup_steps={warmup_steps} must be >= 0", "use 0 for no warm-up")
        if freeze_backbone:
            for p in self.model.backbone.parameters():
                p.requires_grad_(False)
        self.init_ema(ema_decay, ema_warmup)
        if self.is_rtdetr:  # the class loss is the varifocal one (weight_ce), matched at RT-DETR's class cost 2
            self.criterion = RTDETRCriterion(self.num_classes, weight_vfl=weight_ce, weight_bbox=weight_bbox,
                                             weight_giou=weight_giou,
                                             matcher=FocalCostMatcher(2.0 * weight_ce, weight_bbox, weight_giou))
        else:
            matcher = HungarianMatcher(weight_ce, weight_bbox, weight_giou)
            self.criterion = SetCriterion(self.num_classes, matcher=matcher, weight_ce=weight_ce,
                                          weight_bbox=weight_bbox, weight_giou=weight_giou, eos_coef=eos_coef)
        self._eval: dict[str, dict[str, list]] = {}  # per evaluated stage (val, val_ema, ...): results, records
        self.last_predictions: list[dict] = []  # COCO results of the last validation / test epoch

    def forward(self, images: Tensor, pixel_mask: Tensor | None = None) -> dict:
        return self.model(images, pixel_mask)

    @property
    def is_rtdetr(self) -> bool:
        return isinstance(getattr(self.model, "_orig_mod", self.model), RTDETR)

    def denoising_group(self, targets: list[dict[str, Tensor]]) -> DenoisingGroup | None:
        """RT-DETR's contrastive denoising queries for a training batch (None for DETR or ``num_denoising=0``)."""
        if not self.is_rtdetr:
            return None
        model = getattr(self.model, "_orig_mod", self.model)
        cfg = model.config
        return make_denoising_group(targets, model.denoising_class_embed, num_queries=cfg.num_queries,
                                    num_denoising=cfg.num_denoising, label_noise_ratio=cfg.label_noise_ratio,
                                    box_noise_scale=cfg.box_noise_scale) if cfg.num_denoising else None

    def setup(self, stage: str) -> None:
        """Refuse multi-scale sizes RT-DETR cannot take (``VisionDataModule(multiscale_sizes=...)``)."""
        sizes = getattr(self.trainer.datamodule, "multiscale_sizes", None) if self._trainer else None
        if self.is_rtdetr and sizes and any(s % 32 for s in sizes):
            raise ConfigError(f"multiscale_sizes {sizes}: RT-DETR's sizes must be multiples of 32 (its stride-32 "
                              f"map), not {[s for s in sizes if s % 32]}", "e.g. [480, 512, 544, ..., 800]")

    # -- training and evaluation ----------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        dn = self.denoising_group(batch["targets"])
        extra = {} if dn is None else {"denoising": dn}
        outputs = self.model(batch["image"], batch["pixel_mask"], **extra)
        about = f"image ids {[int(t['image_id']) for t in batch['targets']]}"
        try:
            losses = self.criterion(outputs, batch["targets"], **extra)
            loss = losses["loss"]
        except FloatingPointError as e:  # the matcher cannot match non-finite predictions: the loss is not finite
            losses, loss = None, outputs["pred_logits"].new_full((), float("nan"))
            about += f"; {e}"
        checked = self.check_loss(loss, batch_idx, about=about)
        if checked is not None:  # a skipped batch's NaN stays out of the epoch's averages
            self._log_losses(losses, "train", len(batch["targets"]))
        return checked

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")
        if self.ema is not None:
            self._eval_step(batch, "val_ema", self.ema_model())

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")
        if self.ema is not None:
            self._eval_step(batch, "test_ema", self.ema_model())

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Tensor]]:
        """Per image: ``scores``, ``labels`` (category ids), ``boxes`` (xyxy pixels of the original image)."""
        targets = batch["targets"]
        results = self.detections(self(batch["image"], batch["pixel_mask"]), coco_eval.as_tensor_sizes(targets))
        for r, t in zip(results, targets, strict=True):
            r["image_id"] = t["image_id"]
        return results

    def detections(self, outputs: dict, orig_sizes: Tensor, *, box_format: str = "xyxy",
                   threshold: float = 0.0) -> list[dict[str, Tensor]]:
        """``postprocess`` with this task's label → category id mapping."""
        return postprocess(outputs, orig_sizes, box_format=box_format, label_to_category=self.category_ids,
                           threshold=threshold, activation="sigmoid" if self.is_rtdetr else "softmax")

    def on_validation_epoch_start(self) -> None:
        self._eval = {}

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        self._finish_eval("val")
        if self.ema is not None:
            self._finish_eval("val_ema")

    def on_test_epoch_end(self) -> None:
        self._finish_eval("test")
        if self.ema is not None:
            self._finish_eval("test_ema")

    def _eval_step(self, batch: dict[str, Any], stage: str, model: nn.Module | None = None) -> None:
        """Losses and detections of ``model`` (default: the task's own forward, the raw model) on a batch."""
        targets = batch["targets"]
        outputs = (self if model is None else model)(batch["image"], batch["pixel_mask"])
        self._log_losses(self.criterion(outputs, targets), stage, len(targets))
        results = self.detections(outputs, coco_eval.as_tensor_sizes(targets), box_format="xywh")
        seen = self._eval.setdefault(stage, {"results": [], "records": []})
        seen["results"] += to_coco_results(results, [int(t["image_id"]) for t in targets])
        seen["records"] += coco_eval.gt_records(targets)

    def _finish_eval(self, stage: str) -> None:
        """COCO evaluation of the stage's detections, logged as ``{stage}/AP`` etc.; for the raw model (``val``,
        ``test``) also the predictions file and the per-class report (the EMA's stages log their metrics only)."""
        seen = self._eval.get(stage, {"results": [], "records": []})
        results, records = _gather_unique(seen["results"], seen["records"])
        if not records:
            return
        gt = self._ground_truth(stage.removesuffix("_ema"), records)
        metrics, per_class = coco_eval.evaluate_per_class(gt, results, image_ids=[r["image_id"] for r in records])
        for name, value in metrics.items():
            self.log(f"{stage}/{name}", value, prog_bar=name in ("AP", "AP50"), sync_dist=False)
        if stage.endswith("_ema"):
            return
        self.last_predictions = results
        log_dir = self.trainer.log_dir  # on every process: Lightning broadcasts it from rank zero
        if self.hparams.predictions_file and self.trainer.is_global_zero and log_dir:
            self.export_predictions(Path(log_dir) / self.hparams.predictions_file)
        folder = self.report_folder()
        if folder is not None and per_class is not None:
            self.report_per_class(stage, per_class, metrics, folder)

    def report_per_class(self, stage: str, per_class: coco_eval.PerClass, metrics: dict[str, float],
                         folder: Path) -> None:
        """``{stage}_per_class_ap.csv`` (class, category id, AP, AP50, AP75) and ``{stage}_precision_recall.png``
        under ``folder`` (rewritten at each validation); after a test, per-class AP is also logged."""
        from vitkit.tasks.reports import summary, write_csv
        from vitkit.viz.evaluation import precision_recall_figure

        names = [self.class_names[self.category_ids.index(c)] if c in self.category_ids else str(c)
                 for c in per_class.category_ids]
        rows = zip(names, per_class.category_ids, per_class.ap.tolist(), per_class.ap50.tolist(),
                   per_class.ap75.tolist(), strict=True)
        write_csv(folder / f"{stage}_per_class_ap.csv", ["class", "category_id", "AP", "AP50", "AP75"],
                  [list(r) for r in rows])
        epoch = f", epoch {self.current_epoch}" if stage == "val" else ""
        precision_recall_figure(per_class.recall, per_class.precision, per_class.ap, per_class.ap50, names,
                                folder / f"{stage}_precision_recall.png",
                                title=f"{stage}{epoch}: AP {metrics['AP']:.3f}, AP50 {metrics['AP50']:.3f}")
        if stage == "test":
            log.info("%s\nper-class table and precision-recall figure: %s",
                     summary("test per-class AP (IoU 0.50:0.95)", names, per_class.ap.tolist()), folder)

    def _ground_truth(self, stage: str, records: list[dict]):
        source = getattr(self.trainer.datamodule, "coco_ground_truth", None) if self._trainer else None
        if callable(source):
            return source(stage)
        return coco_eval.ground_truth_from_targets(records, self.category_ids, self.class_names)

    def export_predictions(self, path: str | Path) -> Path:
        """Write the last evaluation's detections as a COCO results JSON (a list of ``image_id``, ``category_id``,
        ``bbox`` [x, y, w, h] in original pixels, ``score``)."""
        return atomic_write_text(path, json.dumps(self.last_predictions))

    def _log_losses(self, losses: dict[str, Tensor], stage: str, batch_size: int) -> None:
        train = stage == "train"
        for name in RTDETR_LOGGED_LOSSES if self.is_rtdetr else LOGGED_LOSSES:
            self.log(f"{stage}/{name}", losses[name], on_step=train, on_epoch=True, batch_size=batch_size,
                     prog_bar=name == "loss", sync_dist=not train)

    # -- optimisation ---------------------------------------------------------------------------------------------

    def lr_scale(self, name: str) -> float:
        lr, lr_backbone = self.hparams.lr, self.hparams.lr_backbone
        if not name.startswith("backbone."):
            return 1.0
        return 0.1 if lr_backbone is None else lr_backbone / lr

    def configure_optimizers(self) -> dict | tuple[list, list]:
        """AdamW; a per-step linear warm-up (``warmup_steps``) and a per-epoch ×0.1 drop (``lr_drop_epoch``), each
        when set. Both schedules scale the rates in place (chainable), so they compose."""
        optimizer = torch.optim.AdamW(self.param_groups(self.hparams.lr), lr=self.hparams.lr)
        schedulers = []
        if self.hparams.warmup_steps:
            warmup = self.hparams.warmup_steps
            ramp = torch.optim.lr_scheduler.LinearLR(optimizer, 1 / warmup, 1.0, total_iters=warmup - 1)
            schedulers.append({"scheduler": ramp, "interval": "step"})
        if self.hparams.lr_drop_epoch:
            drop = torch.optim.lr_scheduler.StepLR(optimizer, self.hparams.lr_drop_epoch, gamma=0.1)
            schedulers.append({"scheduler": drop, "interval": "epoch"})
        if len(schedulers) > 1:  # Lightning's dict form holds one scheduler
            return [optimizer], schedulers
        return {"optimizer": optimizer, **({"lr_scheduler": schedulers[0]} if schedulers else {})}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        clip = gradient_clip_val if gradient_clip_val is not None else self.hparams.grad_clip
        if clip:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm=gradient_clip_algorithm
                                or "norm")

    def checkpoint_state(self) -> dict[str, Any]:
        return {**super().checkpoint_state(), "category_ids": self.category_ids}

    def restore_state(self, state: dict[str, Any]) -> None:
        super().restore_state(state)
        self.category_ids = state.get("category_ids", self.category_ids)


def _gather_unique(results: list[dict], records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Every process's detections and ground-truth records, each image once.

    A distributed sampler pads the evaluation split so that every process gets as many images; the padding repeats
    images another process has. An image's detections are kept from the first process (in rank order) that has it,
    so COCO evaluation sees each image once whatever the number of processes.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return results, records
    parts: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, (results, records))
    seen: set[int] = set()
    all_results, all_records = [], []
    for part_results, part_records in parts:
        new = {r["image_id"] for r in part_records} - seen
        all_records += [r for r in part_records if r["image_id"] in new]
        all_results += [r for r in part_results if r["image_id"] in new]
        seen |= new
    return all_results, all_records
