"""ViT-B/16 training throughput on one GPU in bf16, eager and with ``torch.compile``, as model FLOPs utilisation.

    python scripts/bench_gpu.py [--model vit_base_patch16_224] [--batch 128] [--steps 30] [--out bench_gpu.json]

A training step is forward + cross-entropy + backward + fused AdamW step on random 224×224 input, under
``torch.autocast(bfloat16)`` with fp32 weights (what ``--trainer.precision bf16-mixed`` does). Each mode warms up
(``--warmup`` steps; compilation happens there) and then times ``--steps`` steps with CUDA events.

Model FLOPs utilisation (MFU, PaLM's definition): achieved model FLOP/s over the chip's peak dense bf16 FLOP/s. The
model's FLOPs are counted by ``vitkit.bench.flops.count_gflops`` (every token through every block, attention
included; multiply-adds) × 2 FLOPs per multiply-add × 3 for forward + backward. They are the model's FLOPs, not the
hardware's: recomputation or skipped work (vitkit's ViT computes only the class token in its last block) do not
change them. Peaks come from the vendors' data sheets (``PEAK_BF16_TFLOPS``, dense, no sparsity), matched by device
name; ``--peak-tflops`` gives one for other chips.

Without a CUDA device the script says so and exits with status 2; ``--device cpu`` runs the same code on the CPU
(a check of the script itself; MFU only with ``--peak-tflops``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vitkit import create_model
from vitkit.bench.flops import count_gflops

NO_GPU = 2  # exit status when no CUDA device is available

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


def train_flops_per_image(model_name: str, size: int) -> float:
    """Model FLOPs of one training image: 3 × the forward pass (forward + backward), 2 FLOPs per multiply-add."""
    model = create_model(model_name, img_size=size)
    return 3 * 2 * count_gflops(model, (3, size, size)) * 1e9


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training(model_name: str, *, compiled: bool, batch: int, size: int, steps: int, warmup: int,
                  device: torch.device) -> dict:
    """Seconds per step (median of ``steps``) and the peak memory of bf16-mixed training of a fresh model."""
    torch.manual_seed(0)
    model = create_model(model_name, img_size=size).to(device).train()
    if compiled:
        model.compile()
    fused = device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, fused=fused)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, model.num_classes, (batch,), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    start = time.perf_counter()
    for _ in range(warmup):
        step()
    _synchronize(device)
    warmup_s = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        _synchronize(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"step_s": times[len(times) // 2], "warmup_s": warmup_s, "peak_memory_gib": memory}


def report(args: argparse.Namespace, device: torch.device, name: str, peak: float | None) -> dict:
    flops = train_flops_per_image(args.model, args.size)
    rows = []
    for compiled in (False, True):
        timing = time_training(args.model, compiled=compiled, batch=args.batch, size=args.size, steps=args.steps,
                               warmup=args.warmup, device=device)
        images_s = args.batch / timing["step_s"]
        achieved = images_s * flops / 1e12
        rows.append({"mode": "torch.compile" if compiled else "eager", "images_per_s": images_s,
                     "model_tflops_per_s": achieved, "mfu": achieved / peak if peak else None, **timing})
        mfu = f"{100 * achieved / peak:5.1f}%" if peak else "  n/a"
        print(f"{rows[-1]['mode']:14s} {images_s:9.1f} images/s  {achieved:8.1f} model TFLOP/s  MFU {mfu}  "
              f"(warm-up {timing['warmup_s']:.1f} s)", flush=True)
    return {"device": name, "peak_bf16_tflops": peak, "model": args.model, "batch": args.batch, "size": args.size,
            "train_gflops_per_image": flops / 1e9, "torch": torch.__version__, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit_base_patch16_224")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation happens here)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the chip's dense bf16 peak, TFLOP/s, for chips the table does not list")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cpu: run the same code on the CPU, to check the script (small models only)")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args()
    if args.device == "cuda":
        if not torch.cuda.is_available():
            print("bench_gpu.py: no GPU available (torch.cuda.is_available() is False): nothing measured. Run it on "
                  "a machine with a CUDA GPU (or --device cpu to check the script itself).", file=sys.stderr)
            return NO_GPU
        if not torch.cuda.is_bf16_supported():
            print(f"bench_gpu.py: {torch.cuda.get_device_name()} has no bf16 support: nothing measured.",
                  file=sys.stderr)
            return NO_GPU
        name = torch.cuda.get_device_name()
    else:
        name = "cpu"
    peak = args.peak_tflops or (peak_tflops(name) if args.device == "cuda" else None)
    if peak is None:
        print(f"no peak bf16 FLOP/s known for {name!r}: MFU not computed (give --peak-tflops)", file=sys.stderr)
    print(f"{name}: {args.model}, batch {args.batch}, {args.size}×{args.size}, bf16-mixed; peak "
          f"{peak if peak else '?'} TFLOP/s", flush=True)
    result = report(args, torch.device(args.device), name, peak)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
