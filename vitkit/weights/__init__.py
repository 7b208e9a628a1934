"""Checkpoint I/O and converters from foreign layouts (timm, Hugging Face, official releases)."""

from vitkit.weights.io import Checkpoint, CheckpointError, read_checkpoint
from vitkit.weights.loading import LoadReport, load_checkpoint, load_state_dict

__all__ = ["Checkpoint", "CheckpointError", "LoadReport", "load_checkpoint", "load_state_dict", "read_checkpoint"]
