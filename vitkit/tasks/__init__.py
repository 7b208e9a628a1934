"""LightningModules, one per objective, with the network injected."""

from vitkit.tasks.classification import ClassificationTask

__all__ = ["ClassificationTask"]
