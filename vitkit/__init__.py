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

__version__ = "0.1.0"

__all__ = [
    "DETR", "CvT", "CvTConfig", "CvTStageConfig", "DETRConfig", "ImageTransformer", "ImageTransformerConfig",
    "RTDETR", "RTDETRConfig", "VisionDataModule", "VisionTransformer", "ViTConfig", "create_model", "list_models",
]


def __getattr__(name: str):
    # The datamodule needs lightning and albumentations; import it only when asked, so that `import vitkit`
    # (and `vitkit.models`) stay pure PyTorch.
    if name == "VisionDataModule":
        from vitkit.data import VisionDataModule

        return VisionDataModule
    raise AttributeError(f"module 'vitkit' has no attribute {name!r}")
