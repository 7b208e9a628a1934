"""Measuring on an accelerator: chip peaks and model FLOPs utilisation, timed loops under a time budget with CUDA
synchronisation and peak memory, and GPU utilisation sampled while something runs.

Model FLOPs utilisation (MFU, PaLM's definition): achieved model FLOP/s over the chip's peak dense bf16 FLOP/s. A
training image costs 3 × its forward FLOPs (forward + backward), with the forward counted by
``vitkit.bench.flops.count_gflops`` (every token through every block, attention included; multiply-adds) × 2 FLOPs
per multiply-add. They are the model's FLOPs, not the hardware's: recomputation or skipped work (vitkit's ViT
computes only the class token in its last block) do not change them. Peaks are the vendors' data-sheet figures
(dense, no sparsity), matched by device name.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

# Dense bf16 tensor throughput, TFLOP/s (vendor data sheets; the sparsity figures are twice these). Matched in order
# against torch.cuda.get_device_name(): more specific names first.
PEAK_BF16_TFLOPS = (
    ("GB200", 2500.0),
    ("B200", 2250.0),
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM
    ("H800", 989.4),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.1),
    ("L40", 181.0),
    ("L4", 121.0),
    ("RTX 6000 Ada", 364.2),
    ("RTX A6000", 154.8),
    ("RTX 4090", 165.2),
    ("RTX 3090", 71.0),
    ("MI300X", 1307.4),
    ("MI250X", 383.0),
)


def peak_tflops(device_name: str) -> float | None:
    """The table's dense bf16 peak for ``device_name``, or None for a chip it does not list."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops
    return None


def train_flops_per_image(model: torch.nn.Module, input_shape: tuple[int, ...]) -> float:
    """Model FLOPs of one training image of ``input_shape`` ``(C, H, W)``: 3 × the forward, 2 FLOPs per
    multiply-add."""
    from vitkit.bench.flops import count_gflops

    return 3 * 2 * count_gflops(model, input_shape) * 1e9


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    seconds_per_step: float  # mean over the timed steps
    steps: int  # timed steps run (fewer than asked when the budget ran out)
    warmup_s: float  # the untimed warm-up steps (compilation happens there)
    peak_memory_gib: float | None  # CUDA: peak allocated during the timed steps above what was held before them

    def per_second(self, items_per_step: float) -> float:
        return items_per_step / self.seconds_per_step


def timed(step: Callable[[], object], device: torch.device, *, warmup: int, steps: int, budget_s: float,
          min_steps: int = 2) -> Timing:
    """Run ``step`` ``warmup`` times, then up to ``steps`` times while the timed part stays within ``budget_s``
    seconds (at least ``min_steps``). The device is synchronised before and after the timed steps only, so the
    host can queue work ahead as in training; the budget is checked on the host clock between steps."""
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    synchronize(device)
    warmup_s = time.perf_counter() - start
    base = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    start, done = time.perf_counter(), 0
    while done < steps and (done < min_steps or time.perf_counter() - start < budget_s):
        step()
        done += 1
    synchronize(device)
    elapsed = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**30 if base is not None else None
    return Timing(elapsed / done, done, warmup_s, peak)


class UtilisationSampler:
    """GPU utilisation (% of time a kernel ran, as ``nvidia-smi`` reports it) sampled every ``interval`` seconds
    in a background thread between ``start()`` and ``stop()``; ``stop()`` returns the mean, or None where it cannot
    be read (no CUDA, no NVML through ``torch.cuda.utilization``, no ``nvidia-smi``)."""

    def __init__(self, device: torch.device, interval: float = 0.1) -> None:
        self.device, self.interval = device, interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.read = self._reader()

    def _reader(self) -> Callable[[], float] | None:
        if self.device.type != "cuda":
            return None
        try:
            torch.cuda.utilization(self.device)
            return lambda: float(torch.cuda.utilization(self.device))
        except Exception:  # no pynvml / amdsmi: fall back on nvidia-smi
            pass
        if shutil.which("nvidia-smi") is None:
            return None
        index = str(self.device.index or 0)

        def smi() -> float:
            out = subprocess.run(["nvidia-smi", "-i", index, "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
            return float(out.stdout.strip().splitlines()[0])

        try:
            smi()
        except Exception:
            return None
        return smi

    def start(self) -> None:
        if self.read is None:
            return
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(self.read())
            except Exception:
                return

    def stop(self) -> float | None:
        if self._thread is None:
            return None
        self._stop.set()
        self._thread.join()
        return sum(self.samples) / len(self.samples) if self.samples else None
