"""Training memory of RT-DETR with and without gradient checkpointing (``RTDETR.set_grad_checkpointing``), CPU.

One training step (forward with 100 denoising queries, ``RTDETRCriterion``, backward; no optimizer step) of a
randomly initialised preset, each mode in a fresh subprocess: the step's memory is the peak resident size during the
step minus the resident size before it (weights and inputs already there; the gradients, allocated in the step, are
counted in both modes alike). The modes alternate, and the medians are compared. Outputs and gradients of the two
modes are equal (tests/models/test_rtdetr.py::test_grad_checkpointing_keeps_outputs_gradients_and_statistics).

    PYTHONPATH=$PWD /work/main/.venv/bin/python scripts/bench_rtdetr_checkpointing.py --preset rtdetr_r18vd \\
        --batch 2 --size 512 --repeats 2

Measured once, 2026-12-06 (2 CPU cores shared with other jobs, among them a pytest run of this worktree, so the
times are slow and noisy; memory is not affected by the sharing), torch 2.14.1::

    rtdetr_r18vd, batch 2, 512x512, 2 runs each; losses 28.690424 / 28.690424
             plain: step memory     641 MiB (runs [632, 651]), forward+backward 38.1 s
      checkpointed: step memory     441 MiB (runs [431, 450]), forward+backward 44.2 s
      checkpointed / plain: memory 0.69x (201 MiB saved), time 1.16x

Checkpointing the AIFI layer, the CCFM fusion blocks, the decoder layers and the backbone's middle stages takes a
third off the step's memory (the gradients, at most 77 MiB, are in both) for ~16% more time: one more forward pass of
those parts.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def step(preset: str, batch: int, size: int, checkpointing: bool) -> dict:
    """One training step in this process; returns the memory it took and its time."""
    from vitkit import create_model
    from vitkit.detection.denoising import make_denoising_group
    from vitkit.detection.rtdetr_criterion import RTDETRCriterion

    torch.manual_seed(0)
    model = create_model(preset).train()
    model.set_grad_checkpointing(checkpointing)
    criterion = RTDETRCriterion(model.num_classes)
    images = torch.randn(batch, 3, size, size)
    g = torch.Generator().manual_seed(1)
    targets = [{"labels": torch.randint(0, model.num_classes, (5,), generator=g),
                "boxes": torch.cat([torch.rand(5, 2, generator=g) * 0.6 + 0.2,
                                    torch.rand(5, 2, generator=g) * 0.2 + 0.05], 1)} for _ in range(batch)]
    dn = make_denoising_group(targets, model.denoising_class_embed, num_queries=model.config.num_queries,
                              num_denoising=model.config.num_denoising)
    before = rss_mib()
    start = time.perf_counter()
    losses = criterion(model(images, denoising=dn), targets, dn)
    total = losses["loss"] if "loss" in losses else sum(losses.values())
    total.backward()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"step_mib": peak - before, "seconds": seconds, "loss": float(total)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="rtdetr_r18vd")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=["plain", "checkpointed"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(step(args.preset, args.batch, args.size, args.child == "checkpointed")))
        return
    runs: dict[str, list[dict]] = {"plain": [], "checkpointed": []}
    for _ in range(args.repeats):
        for mode in runs:
            cmd = [sys.executable, __file__, "--child", mode, "--preset", args.preset, "--batch", str(args.batch),
                   "--size", str(args.size)]
            runs[mode].append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    memory = {m: statistics.median(r["step_mib"] for r in rs) for m, rs in runs.items()}
    seconds = {m: statistics.median(r["seconds"] for r in rs) for m, rs in runs.items()}
    print(f"{args.preset}, batch {args.batch}, {args.size}x{args.size}, {args.repeats} runs each; "
          f"losses {runs['plain'][0]['loss']:.6f} / {runs['checkpointed'][0]['loss']:.6f}")
    for mode in runs:
        print(f"  {mode:>12}: step memory {memory[mode]:7.0f} MiB (runs {[round(r['step_mib']) for r in runs[mode]]}), "
              f"forward+backward {seconds[mode]:.1f} s")
    saved = memory["plain"] - memory["checkpointed"]
    print(f"  checkpointed / plain: memory {memory['checkpointed'] / memory['plain']:.2f}x ({saved:.0f} MiB saved), "
          f"time {seconds['checkpointed'] / seconds['plain']:.2f}x")


if __name__ == "__main__":
    main()
