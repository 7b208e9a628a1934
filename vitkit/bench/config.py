"""What one ``vitkit bench`` run compares: models, data, recipe, budget; read from YAML and checked up front.

A bench config (``configs/bench/*.yaml``)::

    models: [vit_digits, cvt_digits]          # vitkit presets or timm classifier names
    data: {dataset: digits, batch_size: 64}   # VisionDataModule arguments (any dataset it knows)
    task: {lr: 2.0e-3, weight_decay: 0.05}    # ClassificationTask arguments: the one recipe every model gets
    model_kwargs: {cvt_digits: {drop_path_rate: 0.1}}   # optional per-model config overrides
    budget: {epochs: 30}                       # or {minutes: 15}: per model
    target_accuracy: 0.95                      # for "time to target"
    throughput: {batch_size: 64, steps: 10, warmup: 3}
    trainer: {precision: 32-true}              # further Lightning Trainer arguments
    out: runs/bench/digits
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vitkit.errors import VitkitError


class BenchConfigError(VitkitError, ValueError):
    """A bench config value that cannot work, named with how to fix it."""


@dataclass(frozen=True)
class Budget:
    epochs: int | None = None
    minutes: float | None = None

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.minutes is None):
            raise BenchConfigError(f"budget needs exactly one of epochs or minutes (per model), got {self}",
                                   "e.g. budget: {epochs: 30} or budget: {minutes: 15}")
        value = self.epochs if self.epochs is not None else self.minutes
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise BenchConfigError(f"budget {self}: the budget must be a positive number of epochs or minutes",
                                   "e.g. budget: {epochs: 30} or budget: {minutes: 15}")
        if self.epochs is not None and not isinstance(self.epochs, int):
            raise BenchConfigError(f"budget epochs={self.epochs!r} must be a whole number",
                                   "give whole epochs, or a budget in minutes")

    def describe(self) -> str:
        return f"{self.epochs} epochs" if self.epochs is not None else f"{self.minutes:g} minutes"


@dataclass(frozen=True)
class Throughput:
    batch_size: int = 64
    steps: int = 10
    warmup: int = 3

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if f.name == "warmup" else 1):
                raise BenchConfigError(f"throughput.{f.name}={value!r} must be a positive integer",
                                       "e.g. throughput: {batch_size: 64, steps: 10, warmup: 3}")


@dataclass(frozen=True)
class BenchConfig:
    models: tuple[str, ...]
    budget: Budget
    data: dict[str, Any] = field(default_factory=dict)
    task: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    target_accuracy: float | None = None
    throughput: Throughput = field(default_factory=Throughput)
    trainer: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    out: str = "runs/bench"

    def __post_init__(self) -> None:
        if not self.models or not all(isinstance(m, str) and m for m in self.models):
            raise BenchConfigError(f"models must be a non-empty list of model names, got {self.models!r}",
                                   "e.g. models: [vit_digits, cvt_digits]")
        if len(set(self.models)) != len(self.models):
            raise BenchConfigError(f"models lists a name twice: {list(self.models)}", "list each model once")
        if "model" in self.task:
            raise BenchConfigError("task.model is set, but the models come from the `models` list",
                                   "remove task.model")
        stray = sorted(set(self.model_kwargs) - set(self.models))
        if stray:
            raise BenchConfigError(f"model_kwargs names models not in the list: {stray}",
                                   "add them to `models` or remove their model_kwargs")
        owned = sorted({"max_epochs", "max_time", "logger", "callbacks", "default_root_dir"} & set(self.trainer))
        if owned:
            raise BenchConfigError(f"trainer.{owned[0]} is set by the bench itself (budget, out)", "remove it")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise BenchConfigError(f"target_accuracy={self.target_accuracy} must lie in (0, 1]", "e.g. 0.9")


def load_bench_config(path: str | Path | None = None, **overrides: Any) -> BenchConfig:
    """The config in YAML file ``path`` (if given) with ``overrides`` (not None) applied on top."""
    raw: dict[str, Any] = {}
    if path is not None:
        import yaml

        path = Path(path)
        if not path.is_file():
            raise BenchConfigError(f"bench config {path} does not exist", "check the path (configs/bench/*.yaml)")
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise BenchConfigError(f"{path}: expected a mapping of settings, found {type(raw).__name__}",
                                   "see configs/bench/digits.yaml for the layout")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(BenchConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise BenchConfigError(f"{path or 'bench config'}: unknown setting(s) {unknown}", f"use {sorted(known)}")
    if "models" not in raw or "budget" not in raw:
        raise BenchConfigError(f"{path or 'bench config'}: `models` and `budget` are required", "add them")
    budget, throughput = raw.pop("budget"), raw.pop("throughput", {})
    for name, value in (("budget", budget), ("throughput", throughput)):
        if not isinstance(value, dict):
            raise BenchConfigError(f"{name} must be a mapping, got {value!r}", "e.g. budget: {epochs: 10}")
    try:
        return BenchConfig(models=tuple(raw.pop("models")), budget=Budget(**budget),
                           throughput=Throughput(**throughput), **raw)
    except TypeError as e:  # an unknown key inside budget / throughput
        raise BenchConfigError(f"{path or 'bench config'}: {e}", "budget takes epochs or minutes; throughput "
                               "takes batch_size, steps, warmup") from e
