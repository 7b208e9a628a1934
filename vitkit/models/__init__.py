"""Model families, each a frozen config dataclass, one module and its presets. Pure PyTorch (no lightning)."""

from vitkit.models.cvt import CvT, CvTConfig, CvTStageConfig
from vitkit.models.detr import DETR, DETRConfig
from vitkit.models.image_transformer import ImageTransformer, ImageTransformerConfig
from vitkit.models.registry import build_config, create_model, get_preset, is_model, list_models, register_presets
from vitkit.models.vit import VisionTransformer, ViTConfig

__all__ = [
    "CvT",
    "CvTConfig",
    "CvTStageConfig",
    "DETR",
    "DETRConfig",
    "ImageTransformer",
    "ImageTransformerConfig",
    "VisionTransformer",
    "ViTConfig",
    "build_config",
    "create_model",
    "get_preset",
    "is_model",
    "list_models",
    "register_presets",
]
