"""vitkit: vision Transformers on one attention core, trained through one Lightning datamodule."""

from vitkit.build import create_model
from vitkit.models import (
    DETR,
    RTDETR,
    CvT,
    CvTConfig,
    CvTStageConfig,
    DETRConfig,
    ImageTransformer,
    ImageTransformerConfig,
    RTDETRConfig,
    VisionTransformer,
    ViTConfig,
    list_models,
)
from vitkit.timm_registry import register_timm_models
from vitkit.weights.folder import from_pretrained, push_to_hub, save_pretrained

__version__ = "0.1.0"

# timm.create_model("vitkit_<preset>") for every ViT and CvT preset: timm knows models only through its registry,
# and `import vitkit` is the contract; why this one import-time call is acceptable: vitkit/timm_registry.py.
register_timm_models()

__all__ = [
    "DETR", "CvT", "CvTConfig", "CvTStageConfig", "DETRConfig", "ImageTransformer", "ImageTransformerConfig",
    "Predictor", "RTDETR", "RTDETRConfig", "VisionDataModule", "VisionTransformer", "ViTConfig", "create_model",
    "from_pretrained", "list_models", "push_to_hub", "save_pretrained",
]


def __getattr__(name: str):
    # The datamodule and the Predictor need lightning and albumentations; import them only when asked, so that
    # `import vitkit` (and `vitkit.models`) stay pure PyTorch.
    if name == "VisionDataModule":
        from vitkit.data import VisionDataModule

        return VisionDataModule
    if name == "Predictor":  # needs the tasks, hence lightning
        from vitkit.inference import Predictor

        return Predictor
    raise AttributeError(f"module 'vitkit' has no attribute {name!r}")
