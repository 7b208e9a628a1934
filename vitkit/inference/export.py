"""A model as a graph for other runtimes: ONNX (``onnxruntime``, TensorRT, ...) and ``torch.export``'s programs.

Every family is traced from one *signature* (``export_signature``): a small wrapper taking and returning plain
tensors, example inputs, names, and the dimensions left dynamic.

============== ===================================== ======================================= ===================
family         inputs                                outputs                                 dynamic dimensions
============== ===================================== ======================================= ===================
ViT            ``images`` float ``(B, C, S, S)``     ``logits (B, K)``                       batch
CvT, timm      ``images`` float ``(B, C, H, W)``     ``logits (B, K)``                       batch, H, W (CvT)
DETR           ``images`` float ``(B, 3, H, W)``     ``pred_logits (B, Q, K+1)``,            batch, H, W
                                                     ``pred_boxes (B, Q, 4)`` (cx, cy, w, h
                                                     in [0, 1])
RT-DETR        ``images`` float ``(B, 3, H, W)``     ``pred_logits (B, Q, K)`` (sigmoid      batch, H, W
                                                     scores), ``pred_boxes (B, Q, 4)``
Image Transf.  ``images`` long ``(B, C, S, S)``      ``logits (B, 256, C, S, S)``: every      batch
               [+ ``labels (B,)`` if conditional]    sub-pixel's distribution in one pass
============== ===================================== ======================================= ===================

Why the image size is fixed where it is: a ViT's learned position table is laid out for its training grid and
resampling it for another grid is a Python branch on the input's shape, which a traced graph cannot keep (export at
the size you will serve); the Image Transformer's sequence is H·W·C positions with a fixed generation order. CvT
(convolutional token embedding, no position table) and DETR (sine positions computed from the feature map) take any
size above the smallest their strides allow. DETR is traced without a pixel mask: export one image, or a batch of
images of one size, per call. RT-DETR likewise (any size: it pads to a multiple of 32 inside the graph); its top-k
query selection traces with a fixed ``Q``, so the image must hold at least ``Q`` encoder tokens:
``21·⌈H/32⌉·⌈W/32⌉ >= Q`` (128×128 for the paper's ``Q = 300``; the example image is the smallest square that does).
A smaller image fails inside the runtime's TopK with the runtime's own message, so ``input_requirements`` states the
rule, the export command logs it and the ONNX file carries it in its metadata (``vitkit.min_image_size``,
``vitkit.input_rule``; ``onnx.load(path).metadata_props``).

A model that cannot be traced raises ``ExportError`` naming the family and the reason.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from vitkit.atomic import atomic_write
from vitkit.errors import VitkitError

log = logging.getLogger(__name__)
GraphFormat = Literal["onnx", "exported_program"]
SUFFIXES = {"onnx": ".onnx", "exported_program": ".pt2"}
MAX_BATCH = 4096


class ExportError(VitkitError):
    """A model, or an option, that cannot be exported in the asked format."""


@dataclass(frozen=True)
class ExportSignature:
    """What is traced: ``module(*example)`` → a tuple of tensors; ``dynamic[i]`` maps dims of input ``i`` to names."""

    family: str
    module: nn.Module
    example: tuple[Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic: tuple[dict[int, str], ...]


class _Logits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)


class _ConditionalLogits(_Logits):
    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        return self.model(images, labels)


class _DetrOutputs(_Logits):
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        out = self.model(images)
        return out["pred_logits"], out["pred_boxes"]


def export_signature(model: nn.Module, *, batch: int = 2, image_size: int | None = None) -> ExportSignature:
    """The traced form of ``model`` (a vitkit family or a timm classifier), with example inputs of ``batch`` images
    at ``image_size`` (default: the model's own size; DETR: 64)."""
    from vitkit.models import DETR, RTDETR, CvT, ImageTransformer, VisionTransformer

    model = model.eval()
    cfg = getattr(model, "config", None)
    if isinstance(model, ImageTransformer):
        size = cfg.img_size
        images = torch.randint(0, 256, (batch, cfg.in_chans, size, size))
        if cfg.num_classes:
            return ExportSignature("ImageTransformer", _ConditionalLogits(model),
                                   (images, torch.arange(batch) % cfg.num_classes), ("images", "labels"), ("logits",),
                                   ({0: "batch"}, {0: "batch"}))
        return ExportSignature("ImageTransformer", _Logits(model), (images,), ("images",), ("logits",),
                               ({0: "batch"},))
    if isinstance(model, DETR | RTDETR):
        size = image_size or (64 if isinstance(model, DETR) else _rtdetr_size(cfg.num_queries))
        x = torch.randn(batch, cfg.in_chans, size, size)
        return ExportSignature(type(model).__name__, _DetrOutputs(model), (x,), ("images",),
                               ("pred_logits", "pred_boxes"), ({0: "batch", 2: "height", 3: "width"},))
    size = image_size or getattr(cfg, "img_size", None) or _timm_size(model)
    x = torch.randn(batch, getattr(cfg, "in_chans", 3), size, size)
    if isinstance(model, VisionTransformer):
        return ExportSignature("ViT", _Logits(model), (x,), ("images",), ("logits",), ({0: "batch"},))
    family = "CvT" if isinstance(model, CvT) else type(model).__name__
    dynamic = {0: "batch", 2: "height", 3: "width"} if isinstance(model, CvT) else {0: "batch"}
    return ExportSignature(family, _Logits(model), (x,), ("images",), ("logits",), (dynamic,))


def input_requirements(model: nn.Module) -> dict[str, str]:
    """What an image must satisfy for ``model``'s exported graph beyond its dynamic dimensions, as ONNX metadata
    (``{}`` where nothing): RT-DETR's minimum size, from its query count."""
    from vitkit.models import RTDETR
    from vitkit.models.rtdetr import STRIDES

    if not isinstance(model, RTDETR):
        return {}
    q, s = model.config.num_queries, STRIDES[-1]
    cells = -(-q // 21)  # stride-32 cells: each brings 16 + 4 + 1 = 21 tokens of the three levels
    side = s * math.ceil(math.sqrt(cells))  # the smallest square
    return {"vitkit.min_image_size": f"{side}x{side}",
            "vitkit.input_rule": f"ceil(H/{s})*ceil(W/{s}) >= {cells} (smallest square {side}x{side}): at least "
                                 f"num_queries={q} encoder tokens, 21 per {s}x{s} cell; smaller images fail in TopK"}


def _rtdetr_size(num_queries: int) -> int:
    """The smallest square side (a multiple of 32, at least 64) whose three levels hold ``num_queries`` tokens:
    ``N = (S/8)² + (S/16)² + (S/32)² = 21·S²/1024``."""
    side = 64
    while 21 * side * side // 1024 < num_queries:
        side += 32
    return side


def _timm_size(model: nn.Module) -> int:
    size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))
    return int(size[-1])


def export_program(model: nn.Module, *, image_size: int | None = None) -> tuple[torch.export.ExportedProgram,
                                                                                 ExportSignature]:
    """``torch.export`` of ``model``'s signature with its dynamic dimensions; ``ExportError`` when it cannot be
    traced."""
    sig = export_signature(model, image_size=image_size)
    shapes = tuple({d: _dim(name) for d, name in dims.items()} for dims in sig.dynamic)
    try:
        with torch.no_grad():
            program = torch.export.export(sig.module, sig.example, dynamic_shapes=shapes)
    except Exception as e:  # torch.export raises many types; each means "this model, as written, does not trace"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"{sig.family} cannot be exported with torch.export: {reason}",
                          "export the weights with --format safetensors, or report this model") from e
    return program, sig


def _dim(name: str):
    if name == "batch":
        return torch.export.Dim("batch", min=1, max=MAX_BATCH)
    return torch.export.Dim.AUTO  # the smallest size the strides allow is found by tracing


def dynamic_dims(program: torch.export.ExportedProgram, sig: ExportSignature) -> dict[str, list[int]]:
    """``{input name: dims that stayed symbolic}`` in the traced program (what the runtime may vary)."""
    placeholders = [n for n in program.graph.nodes if n.op == "placeholder"][-len(sig.input_names):]
    return {name: [d for d, s in enumerate(node.meta["val"].shape) if not isinstance(s, int)]
            for name, node in zip(sig.input_names, placeholders, strict=True)}


def save_exported_program(model: nn.Module, out: str | Path, *, image_size: int | None = None) -> dict[str, Any]:
    """Write ``torch.export.save`` of ``model`` to ``out`` (``.pt2``); returns the dynamic dimensions."""
    program, sig = export_program(model, image_size=image_size)
    atomic_write(out, lambda f: torch.export.save(program, f))
    return dynamic_dims(program, sig)


def save_onnx(model: nn.Module, out: str | Path, *, image_size: int | None = None) -> dict[str, Any]:
    """Write ``model`` as an ONNX graph to ``out`` (``torch.export``, then ``torch.onnx``'s exporter), with
    ``input_requirements`` as metadata; returns the dynamic dimensions. Needs the ``export`` extra (onnx,
    onnxscript)."""
    program, sig = export_program(model, image_size=image_size)
    proto = onnx_model(program, sig)
    for key, value in input_requirements(model).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write(out, lambda f: f.write(proto.SerializeToString()))
    return dynamic_dims(program, sig)


def onnx_model(program: torch.export.ExportedProgram, sig: ExportSignature):
    """The ``onnx.ModelProto`` of an exported program, its inputs and outputs named by ``sig``."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ExportError(f"ONNX export needs onnx and onnxscript ({e.name} is not installed)",
                          "pip install 'vitkit[export]'") from e
    try:
        onnx_program = torch.onnx.export(program, sig.example, input_names=list(sig.input_names),
                                         output_names=list(sig.output_names), dynamo=True, optimize=False,
                                         verbose=False)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"{sig.family} cannot be converted to ONNX: {reason}",
                          "use --format exported_program, or report this model") from e
    return onnx_program.model_proto
