"""Model families, each a frozen config dataclass, one module and its presets. Pure PyTorch (no lightning).

``build_model(name, **overrides)`` builds a preset with fresh weights; ``vitkit.create_model`` (``vitkit.build``)
also loads checkpoints.
"""

from vitkit.models.cvt import CvT, CvTConfig, CvTStageConfig
from vitkit.models.detr import DETR, DETRConfig
from vitkit.models.image_transformer import ImageTransformer, ImageTransformerConfig
from vitkit.models.registry import Preset, build_config, build_model, get_preset, is_model, list_models
from vitkit.models.rtdetr import RTDETR, RTDETRConfig
from vitkit.models.vit import VisionTransformer, ViTConfig

__all__ = [
    "CvT",
    "CvTConfig",
    "CvTStageConfig",
    "DETR",
    "DETRConfig",
    "ImageTransformer",
    "ImageTransformerConfig",
    "Preset",
    "RTDETR",
    "RTDETRConfig",
    "VisionTransformer",
    "ViTConfig",
    "build_config",
    "build_model",
    "get_preset",
    "is_model",
    "list_models",
]
