"""Sampling images from an ``ImageTransformer``, one sub-pixel at a time (Parmar et al. 2018, §4).

With ``use_cache=True`` each step runs only the new position through the layers, attending to a per-layer KV cache
that holds the last ``window`` positions — all that local attention can still see; without it every step recomputes
the prefix. Both draw the same random numbers (Gumbel-max: ``argmax(logits / T + g)``, with ``g`` drawn for every
position whether it is sampled or given), so from the same seed they return the same images; the cache makes it
orders of magnitude faster (``scripts/bench_image_transformer.py``).

Completion: given images whose top ``rows`` rows are known, those sub-pixels are written in instead of sampled and
the model conditions on them. In raster order (``local_1d``, ``global``) they form a prefix; in the 2-D variant's
block-raster order some later-generated known pixels are not yet visible when the first unknown ones are drawn.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from vitkit.errors import ConfigError
from vitkit.models.image_transformer import NUM_LEVELS, ImageTransformer

log = logging.getLogger(__name__)


@torch.no_grad()
def sample(
    model: ImageTransformer,
    num_samples: int,
    *,
    temperature: float = 1.0,
    y: int | Tensor | None = None,
    known: Tensor | None = None,
    rows: int = 0,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> Tensor:
    """Draw ``num_samples`` images ``(B, C, H, W)`` uint8.

    Args:
        temperature: divides the logits; ``< 1`` sharpens, ``> 1`` flattens. Must be ``> 0``.
        y: class label (``int`` for all samples, or ``(B,)``) for class-conditional models.
        known: images ``(1 or B, C, H, W)`` whose top ``rows`` rows are kept (completion).
        rows: how many rows of ``known`` to keep, ``0 <= rows < H``.
        generator: CPU random generator, for reproducible samples.
        use_cache: incremental decoding with KV caches; ``False`` recomputes the prefix at every step.
    """
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}", "1 samples the model's distribution")
    if num_samples < 1:
        raise ConfigError(f"num_samples must be >= 1, got {num_samples}", "ask for at least one sample")
    cfg, device = model.config, next(model.parameters()).device
    labels = _labels(y, num_samples, cfg.num_classes, device)
    fixed_seq, fixed = _known(model, known, rows, num_samples)
    was_training = model.training
    model.eval()
    seq = torch.zeros(num_samples, model.seq_len, dtype=torch.long, device=device)  # (B, N)
    caches = model.init_caches() if use_cache else None
    for t in range(model.seq_len):
        noise = _gumbel(num_samples, generator).to(device)  # drawn at every step: same stream either way
        prev = seq[:, t - 1] if t > 0 else seq[:, 0]
        if caches is not None:
            logits = model.step(prev, t, caches, labels)  # (B, 256)
        elif fixed is None or not fixed[t]:
            logits = model.forward_sequence(seq[:, : t + 1], labels)[:, t]  # (B, 256)
        if fixed is not None and fixed[t]:
            seq[:, t] = fixed_seq[:, t]
        else:
            seq[:, t] = (logits.float() / temperature + noise).argmax(dim=-1)
    model.train(was_training)
    return model.from_sequence(seq).to(torch.uint8)  # (B, C, H, W)


def _gumbel(batch: int, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(batch, NUM_LEVELS, generator=generator).clamp_(min=1e-20)  # (B, 256)
    return -torch.log(-torch.log(u))


def _labels(y: int | Tensor | None, batch: int, num_classes: int, device: torch.device) -> Tensor | None:
    if y is None:
        if num_classes > 0:
            raise ConfigError(f"the model is class-conditional ({num_classes} classes) and no class was given",
                              "give a class label (vitkit sample --class C)")
        return None
    if num_classes == 0:
        raise ConfigError("the model is unconditional (num_classes=0) but a class label was given",
                          "drop the class label")
    labels = torch.as_tensor(y, dtype=torch.long, device=device).expand(batch)  # (B,)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ConfigError(f"class label {y} outside [0, {num_classes})", f"use a class in 0..{num_classes - 1}")
    return labels


def _known(model: ImageTransformer, known: Tensor | None, rows: int, batch: int) -> tuple[Tensor | None, Tensor | None]:
    """Known tokens ``(B, N)`` in generation order and which positions are given ``(N,)``, for completion."""
    H = model.config.img_size
    if known is None:
        if rows:
            raise ConfigError(f"rows={rows} is given without an image to complete", "pass the image to complete")
        return None, None
    if not 0 <= rows < H:
        raise ConfigError(f"rows={rows}: must lie in [0, {H})",
                          f"the model's images have {H} rows and at least one must be left to generate")
    if known.shape[0] not in (1, batch):
        raise ConfigError(f"completion images: batch of {known.shape[0]}, expected 1 or {batch}",
                          "give one image or one per sample")
    device = next(model.parameters()).device
    tokens = model.to_sequence(known.to(device)).expand(batch, -1)  # (B, N)
    return tokens, model.row_idx < rows
