"""What every vitkit task shares, written once: building the model for the data, the speed and safety switches,
optimiser groups, checkpoint callbacks and what a checkpoint carries besides the weights.

A task subclasses ``TaskShell`` and calls ``init_shell`` from its constructor (after ``super().__init__()``); it
keeps its objective — loss, metrics, learning-rate schedule and ``lr_scale`` — to itself.

- **Model**: a vitkit preset or timm name is built sized for the data (``vitkit.build.create_for_data``: class count,
  channels, image size; ``None`` keeps the preset's own), with ``model_kwargs`` overriding config fields and
  ``checkpoint`` loaded; an ``nn.Module`` is used as it is.
- **Switches** (every task's arguments): ``compile`` (``torch.compile`` of the model when the trainer sets it up:
  ``true`` or its options, e.g. ``{mode: max-autotune}``; the weights' names do not change), ``grad_checkpointing``
  (each block recomputed in the backward pass instead of storing its activations) and ``nonfinite_loss`` (``stop``
  on a NaN/infinite training loss naming the step and batch, or ``skip`` the batch; ``vitkit.training.nonfinite``).
- **Checkpoints**: ``checkpoints/best-….ckpt`` (the task's monitored metric) and ``checkpoints/last.ckpt`` (every
  epoch; Lightning's ``save_last`` only refreshes it when the best one improves). A checkpoint records the task's
  class (so ``load_task`` rebuilds it without running pickled code), its class names and the data's preprocessing
  (``vitkit.data.preprocessing``), which inference, ``vitkit detect`` and exports use.
- **Weights EMA** (``init_ema``, ``vitkit.tasks.ema``): an exponential moving average of the weights, updated once
  per optimiser step, evaluated by the task beside the raw model (``val_ema/*``) through ``ema_model()``, saved under
  the checkpoint's ``"model_ema"`` entry; ``load_task(path, ema=True)`` serves those weights.
- **Evaluation reports**: per-class tables and figures go to ``<run folder>/evaluation/`` (``report_folder``).
- **Optimiser groups**: AdamW groups without weight decay for biases, norms and what the model's
  ``no_weight_decay()`` lists, each at ``lr × lr_scale(name)``.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import Tensor, nn

from vitkit.build import create_for_data
from vitkit.errors import CheckpointError, ConfigError
from vitkit.tasks.ema import build_ema
from vitkit.tasks.optim import param_groups
from vitkit.training.nonfinite import checked_loss
from vitkit.weights import load_state_dict
from vitkit.weights.io import load_pickle_safely

TASK_KEY = "vitkit_task"
NonFinitePolicy = Literal["stop", "skip"]


class TaskShell(L.LightningModule):
    """Base of the vitkit tasks. Subclasses set ``MONITOR = (metric, mode, best-file name)``."""

    MONITOR: ClassVar[tuple[str, str, str]]

    def init_shell(self, model: str | nn.Module, *, class_names: list[str] | None, num_classes: int | None = None,
                   in_chans: int | None = None, img_size: int | None = None,
                   model_kwargs: dict[str, Any] | None = None, checkpoint: str | None = None,
                   compile: bool | dict[str, Any] = False, grad_checkpointing: bool = False,
                   nonfinite_loss: NonFinitePolicy = "stop", allow_large_inputs: bool = False) -> None:
        """Save the hyper-parameters of the calling constructor, check the switches, build and set ``self.model``
        (and ``self.load_report``: what loading ``checkpoint`` did, or ``None``)."""
        frame = inspect.currentframe().f_back  # the subclass's __init__: its arguments are the hyper-parameters
        self.save_hyperparameters(ignore=["model"] if isinstance(model, nn.Module) else None, frame=frame)
        if nonfinite_loss not in ("stop", "skip"):
            raise ConfigError(f"nonfinite_loss={nonfinite_loss!r}", "use 'stop' or 'skip'")
        if not isinstance(compile, bool | dict):
            raise ConfigError(f"compile={compile!r}", "use true, false, or a mapping of torch.compile options "
                              "(e.g. {mode: max-autotune})")
        if isinstance(model, nn.Module):
            if model_kwargs or checkpoint:
                raise ConfigError("model_kwargs / checkpoint were given with a ready nn.Module",
                                  "build the module with its config and weights, or pass a preset name")
            self.model, self.load_report = model, None
        else:
            overrides = dict(model_kwargs or {})
            sizes = {"num_classes": num_classes, "in_chans": in_chans, "img_size": img_size}
            sizes.update({k: overrides.pop(k) for k in list(sizes) if k in overrides})  # model_kwargs win
            self.model, self.load_report = create_for_data(model, checkpoint=checkpoint,
                                                           allow_large_inputs=allow_large_inputs, **sizes, **overrides)
        if grad_checkpointing:
            setter = getattr(self.model, "set_grad_checkpointing", None)
            if setter is None:
                raise ConfigError(f"grad_checkpointing: {type(self.model).__name__} has no set_grad_checkpointing()",
                                  "turn grad_checkpointing off for this model (vitkit's families and timm's have it)")
            setter(True)
        self.class_names = list(class_names) if class_names else None  # subclasses fill a default
        self.preprocessing: dict[str, Any] | None = None  # the data's, from fit start or the checkpoint
        self._compiled = False
        self.init_ema(None)

    def init_ema(self, decay: float | None, warmup: bool | int = True) -> None:
        """Keep an EMA of ``self.model``'s weights with ``decay`` (``None``: none; ``vitkit.tasks.ema``); sets
        ``self.ema``. Call it after ``init_shell``, once the model's weights are loaded."""
        # The copy is kept out of the module tree (and of state_dict, so that Lightning checkpoints still load as
        # plain weights); it is saved under the checkpoint's "model_ema" entry.
        object.__setattr__(self, "ema", build_ema(self.model, decay, warmup=warmup))
        self._ema_step = -1

    # -- the model's design ----------------------------------------------------------------------------------------
    @property
    def input_size(self) -> int | None:
        """The square image size the model was built for (``img_size`` of its config), if it has one."""
        config = getattr(self.model, "config", None)
        return getattr(config, "img_size", None)

    # -- training-time switches ------------------------------------------------------------------------------------
    def check_loss(self, loss: Tensor, batch_idx: int, about: str = "") -> Tensor | None:
        """``loss``, or ``None`` to skip the batch, or ``NonFiniteLossError`` (``nonfinite_loss``)."""
        return checked_loss(self, loss, batch_idx, policy=self.hparams.nonfinite_loss, about=about)

    def configure_model(self) -> None:
        options = self.hparams.get("compile")
        if options and not self._compiled:
            try:
                self.model.compile(**({} if options is True else options))
            except TypeError as e:
                raise ConfigError(f"compile={options!r}: not options of torch.compile ({e})",
                                  "use torch.compile's keywords: mode, backend, dynamic, fullgraph, options") from e
            self._compiled = True

    # -- weights EMA -----------------------------------------------------------------------------------------------
    def ema_model(self) -> nn.Module:
        """The EMA weights' module, on the task's device (Lightning moves only registered modules)."""
        module = self.ema.module
        if next(module.parameters()).device != self.device:
            module.to(self.device)
        return module

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None and self.global_step != self._ema_step:  # once per optimiser step
            self.ema_model().requires_grad_(False)
            self.ema.update(self.model, step=self.global_step)
            self._ema_step = self.global_step

    # -- optimisation ----------------------------------------------------------------------------------------------
    def lr_scale(self, name: str) -> float:
        """Learning-rate multiplier of parameter ``name`` (1 by default; layer-wise decay, a slower backbone)."""
        return 1.0

    def param_groups(self, lr: float) -> list[dict]:
        """AdamW groups of the trainable parameters, each at ``lr × lr_scale`` (kept as ``lr_scale`` for schedules)."""
        groups = param_groups(self.model, weight_decay=self.hparams.weight_decay, lr_scale=self.lr_scale)
        for group in groups:
            group["lr"] = lr * group["lr_scale"]
        return groups

    # -- evaluation reports ----------------------------------------------------------------------------------------
    def report_folder(self) -> Path | None:
        """Where an evaluation's per-class tables and figures go, ``<run folder>/evaluation``, on process 0; ``None``
        on the other processes, during the sanity check and without a trainer. Call it on every process."""
        trainer = self._trainer
        if trainer is None or trainer.sanity_checking:
            return None
        log_dir = trainer.log_dir  # on every process: Lightning broadcasts it from rank zero
        return Path(log_dir or trainer.default_root_dir) / "evaluation" if trainer.is_global_zero else None

    # -- checkpoints -----------------------------------------------------------------------------------------------
    def configure_callbacks(self) -> list[Callback]:
        metric, mode, filename = self.MONITOR
        best = ModelCheckpoint(monitor=metric, mode=mode, filename=filename, auto_insert_metric_name=False)
        last = ModelCheckpoint(monitor=None, filename="last", save_top_k=1, enable_version_counter=False)
        return [best, last, *self.extra_callbacks()]

    def extra_callbacks(self) -> list[Callback]:
        return []

    def on_fit_start(self) -> None:
        data = getattr(self.trainer, "datamodule", None)
        preprocessing = getattr(data, "preprocessing", None)
        if preprocessing is not None:
            self.preprocessing = preprocessing.to_dict()

    def checkpoint_state(self) -> dict[str, Any]:
        """What the task saves beside the weights (subclasses add to it); restored by ``restore_state``."""
        state = {"class_names": self.class_names, "preprocessing": self.preprocessing}
        if self.ema is not None:
            state["model_ema"] = self.ema.module.state_dict()
        return state

    def restore_state(self, state: dict[str, Any]) -> None:
        self.class_names = state.get("class_names") or self.class_names
        self.preprocessing = state.get("preprocessing") or self.preprocessing
        if self.ema is not None and "model_ema" in state:
            self.ema.module.load_state_dict(state["model_ema"])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[TASK_KEY] = f"{type(self).__module__}:{type(self).__qualname__}"
        checkpoint.update(self.checkpoint_state())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.restore_state(checkpoint)


def load_task(path: str | Path, *, expected: type[TaskShell] | None = None, ema: bool = False) -> TaskShell:
    """The task saved in Lightning checkpoint ``path``, in eval mode on the CPU, read without running pickled code.

    Only task classes defined in ``vitkit.tasks`` are rebuilt; ``expected`` (a task class) turns "this checkpoint
    holds another kind of task" into a clear error. ``ema``: the model gets the checkpoint's EMA weights (its
    ``"model_ema"`` entry, written when the run had ``ema_decay``) instead of the raw ones; a checkpoint without
    them is a ``CheckpointError``.
    """
    raw = load_pickle_safely(path)
    if not isinstance(raw, dict) or TASK_KEY not in raw:
        raise CheckpointError(f"{path} is not a vitkit training checkpoint (no {TASK_KEY!r} entry)",
                              "pass the .ckpt written under the run's checkpoints/ folder")
    module_name, _, qualname = raw[TASK_KEY].partition(":")
    if not module_name.startswith("vitkit.tasks."):
        raise CheckpointError(f"{path}: refusing to build task class {raw[TASK_KEY]!r} from outside vitkit.tasks",
                              "only checkpoints of vitkit's own tasks can be rebuilt")
    cls = getattr(importlib.import_module(module_name), qualname)
    if expected is not None and not issubclass(cls, expected):
        raise CheckpointError(f"{path} holds a {cls.__name__} checkpoint, but a {expected.__name__} is needed here",
                              f"pass the checkpoint of a {expected.__name__} run")
    hparams = {k: v for k, v in (raw.get("hyper_parameters") or {}).items() if not k.startswith("_")}  # CLI's own
    hparams.pop("checkpoint", None)  # the initial weights: the checkpoint's own weights replace them
    task = cls(**hparams)
    load_state_dict(task, raw["state_dict"], source=str(path), head_prefixes=())
    task.on_load_checkpoint(raw)
    if ema:
        if not isinstance(raw.get("model_ema"), dict):
            raise CheckpointError(f"{path} holds no EMA weights (its run had no ema_decay)",
                                  "drop --ema to use its weights, or train with --model.init_args.ema_decay")
        task.model.load_state_dict(raw["model_ema"])
    return task.eval()
