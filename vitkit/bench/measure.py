"""Training and inference throughput and peak training memory of one classifier, measured like timm's benchmark.

Training step: forward + cross-entropy + backward + AdamW step on a fixed random batch, in ``train()`` mode;
inference: forward under ``torch.inference_mode()`` in ``eval()`` mode; images per second over ``steps`` steps after
``warmup`` steps. Peak memory of the training steps: on CUDA ``torch.cuda.max_memory_allocated`` above what the
model, optimiser and batch hold; on the CPU the peak resident set size above the same baseline, measured in a
fresh Python process (``python -m vitkit.bench.measure SPEC``) so no earlier model's allocations are counted.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec``: ``model``, ``build`` (``vitkit.build.create_for_data`` kwargs), ``input`` (C, H, W),
    ``batch_size``, ``steps``, ``warmup``, ``device``, ``precision`` (32-true or bf16-mixed). Returns
    ``train_img_s``, ``infer_img_s``,
    ``peak_mem_mb``, ``precision``, ``device``, ``batch_size``, ``threads``."""
    if spec["device"] == "cpu":
        env = dict(os.environ)  # the child imports this very vitkit, wherever it was imported from
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parents[2]), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "vitkit.bench.measure", json.dumps(spec)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode:
            raise RuntimeError(f"throughput measurement of {spec['model']} failed:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    return measure_here(spec)


def measure_here(spec: dict[str, Any]) -> dict[str, Any]:
    """The measurement in this process (the CPU path runs it in a fresh one)."""
    from vitkit.build import create_for_data

    device = torch.device(spec["device"])
    torch.manual_seed(0)
    model = create_for_data(spec["model"], **spec["build"])[0].to(device)
    n = spec["batch_size"]
    x = torch.randn(n, *spec["input"], device=device)
    y = torch.randint(0, spec["build"]["num_classes"], (n,), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    precision = spec.get("precision", "32-true")
    if precision not in ("32-true", "bf16-mixed"):
        raise ValueError(f"throughput precision {precision!r}: use 32-true or bf16-mixed")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")

    def train_step() -> None:
        with autocast:
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer_step() -> None:
        with torch.inference_mode(), autocast:
            model(x)

    base = _memory_mb(device, baseline=True)
    model.train()
    train_s = _timed(train_step, spec["warmup"], spec["steps"], device)
    peak = _memory_mb(device, baseline=False) - base
    model.eval()
    infer_s = _timed(infer_step, spec["warmup"], spec["steps"], device)
    return {"train_img_s": n * spec["steps"] / train_s, "infer_img_s": n * spec["steps"] / infer_s,
            "peak_mem_mb": peak, "precision": precision, "device": _device_name(device),
            "batch_size": n, "threads": torch.get_num_threads()}


def _timed(step, warmup: int, steps: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _memory_mb(device: torch.device, *, baseline: bool) -> float:
    if device.type == "cuda":
        if baseline:
            torch.cuda.reset_peak_memory_stats(device)
            return torch.cuda.memory_allocated(device) / 2**20
        return torch.cuda.max_memory_allocated(device) / 2**20
    if baseline:  # current resident set size
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak, KiB on Linux


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


if __name__ == "__main__":
    print(json.dumps(measure_here(json.loads(sys.argv[1]))))
