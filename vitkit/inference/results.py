"""What ``vitkit.Predictor`` returns: one typed result per image."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassPrediction:
    """A classifier's top-k for one image, most probable first.

    ``source``: the file path, or ``"<image i>"`` for an in-memory image (its position in the call).
    ``indices`` / ``names`` / ``probs``: class index, class name and softmax probability of each of the top k.
    """

    source: str
    indices: tuple[int, ...]
    names: tuple[str, ...]
    probs: tuple[float, ...]

    @property
    def index(self) -> int:
        return self.indices[0]

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def prob(self) -> float:
        return self.probs[0]


@dataclass(frozen=True)
class DetectedObject:
    """One detection: dataset category id, class name, score, and ``box`` ``(x0, y0, x1, y1)`` in pixels of the
    original image."""

    category_id: int
    name: str
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Detections:
    """A detector's output for one image of ``height × width`` pixels, objects by decreasing score."""

    source: str
    height: int
    width: int
    objects: tuple[DetectedObject, ...]
