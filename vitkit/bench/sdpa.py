"""Which ``scaled_dot_product_attention`` kernel a model's attention really runs: flash, memory-efficient, cuDNN or
the unfused math fallback.

Two views of one forward pass:
- ``kernels_run(fn)``: the kernels PyTorch's dispatcher picked, read from the profiler's operator names (the
  dispatcher falls back on math silently when a fused kernel refuses the inputs: a mask, a dtype, a head size);
- ``refusals(fn)``: ``fn`` re-run with SDPA restricted to each backend alone and to the fused set; for each, None when
  it runs, or why not (PyTorch's warning that names the unsupported input, else the error). A model whose
  attention cannot run on the fused set alone is running on math.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

# profiler operator → backend; the CPU's fused kernel is the flash one
KERNEL_OPS = {
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash",
    "aten::_scaled_dot_product_efficient_attention": "efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cudnn",
    "aten::_scaled_dot_product_fused_attention_overrideable": "overrideable",
    "aten::_scaled_dot_product_attention_math": "math",
}

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
FUSED = ("flash", "efficient", "cudnn")
_INTERNAL = re.compile(r"\s*\(Triggered internally at [^)]*\)")  # where in PyTorch's C++ the warning was raised
_KERNEL_WARNING = re.compile(r"attention|kernel|dropout|mask|head|dtype|stride", re.IGNORECASE)


def kernels_run(fn: Callable[[], object]) -> Counter[str]:
    """How many SDPA calls of ``fn()`` ran on each backend (``{"efficient": 12, "math": 2}``)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return Counter(KERNEL_OPS[e.name] for e in prof.events() if e.name in KERNEL_OPS)


def refusal(fn: Callable[[], object], backends: Iterable[str]) -> str | None:
    """None when ``fn()`` runs with SDPA restricted to ``backends``; otherwise the first reason PyTorch gives."""
    with warnings.catch_warnings(record=True) as caught, sdpa_kernel([BACKENDS[b] for b in backends]):
        warnings.simplefilter("always")
        try:
            fn()
            return None
        except Exception as e:  # RuntimeError "No available kernel", or what a restricted kernel raises
            messages = [str(w.message) for w in caught]
            reasons = [_INTERNAL.sub("", m).strip() for m in messages if _KERNEL_WARNING.search(m)]
            return " ".join(" ".join(reasons or [str(e)]).split())[:200]


def refusals(fn: Callable[[], object]) -> dict[str, str | None]:
    """``refusal`` for each backend alone and for ``"fused"`` (flash + efficient + cuDNN together)."""
    found = {name: refusal(fn, [name]) for name in BACKENDS}
    found["fused"] = refusal(fn, FUSED)
    return found
