"""Using a trained model: ``Predictor`` (files, folders, PIL images, tensors → typed results) and exports
(``vitkit.inference.export``: ONNX and ``torch.export`` programs)."""

from vitkit.inference.predictor import FilePredictions, Predictor, saved_preprocessing
from vitkit.inference.results import ClassPrediction, DetectedObject, Detections

__all__ = ["ClassPrediction", "DetectedObject", "Detections", "FilePredictions", "Predictor", "saved_preprocessing"]
