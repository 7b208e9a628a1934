"""Checkpoints: safe reading (no pickled code runs), one converter module per family for foreign layouts (timm,
Hugging Face, official releases), and loading with a report. Imports ``vitkit.models`` for its types only; the
models never import this package."""

from vitkit.errors import CheckpointError
from vitkit.weights import hub
from vitkit.weights.converters import Converter, converter_for, load_checkpoint
from vitkit.weights.io import Checkpoint, read_checkpoint
from vitkit.weights.loading import LoadReport, load_state_dict

__all__ = ["Checkpoint", "CheckpointError", "Converter", "LoadReport", "converter_for", "load_checkpoint",
           "hub", "load_state_dict", "read_checkpoint"]
