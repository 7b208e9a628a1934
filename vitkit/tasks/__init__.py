"""LightningModules, one per objective, with the network injected."""

from vitkit.tasks.classification import ClassificationTask
from vitkit.tasks.detection import DetectionTask
from vitkit.tasks.generation import GenerationTask

__all__ = ["ClassificationTask", "DetectionTask", "GenerationTask"]
