"""Counting a model's FLOPs with ``torch.utils.flop_counter.FlopCounterMode``, attention included.

The count runs on the reference attention path, so the ``Q Kᵀ`` and ``weights · V`` matmuls are ordinary matmuls
that the counter sees (some FLOP counters skip fused attention kernels, which understates Transformers against
convolutional hybrids). Models from elsewhere (timm) that call the fused kernel are counted too: PyTorch's counter
knows the CUDA kernels but not the CPU one (``_scaled_dot_product_flash_attention_for_cpu``), which is given the
same formula here. Models with ``forward_features`` / ``forward_head`` are counted through those, every token through
every block (the papers' count), even where ``forward`` skips work the head does not read. Following the papers
(ViT, CvT, DETR), one multiply-add counts as one FLOP: the counter's total, which counts two per multiply-add, is
halved.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from vitkit.layers import Attention


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_FUSED_CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop}


@torch.no_grad()
def count_gflops(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Forward GFLOPs (multiply-adds ×1e-9) for one input of ``input_shape`` (without the batch dimension)."""
    attentions = [m for m in model.modules() if isinstance(m, Attention)]
    saved = [m.fused for m in attentions]
    was_training = model.training
    param = next(model.parameters(), None)
    x = torch.zeros(1, *input_shape, device=param.device if param is not None else "cpu")
    try:
        for m in attentions:
            m.fused = False
        model.eval()
        with FlopCounterMode(display=False, custom_mapping=_FUSED_CPU_ATTENTION) as counter:
            if hasattr(model, "forward_features") and hasattr(model, "forward_head"):
                model.forward_head(model.forward_features(x))  # every token through every block, as papers count
            else:
                model(x)
    finally:
        for m, fused in zip(attentions, saved, strict=True):
            m.fused = fused
        model.train(was_training)
    return counter.get_total_flops() / 2 / 1e9
