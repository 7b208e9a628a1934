"""vitkit ``cvt_13`` against Hugging Face ``CvtForImageClassification``: speed and memory on CPU, same weights.

    PYTHONPATH=. python scripts/bench_cvt_vs_hf.py [--batch-size 16] [--image-size 224] [--repeats 3] [--steps 3]
                                                   [--threads N]

What is measured (timm's ``benchmark.py`` definitions):
- training step: forward + cross-entropy + backward + AdamW step, on a fixed random batch, in ``train()`` mode;
- inference: forward under ``torch.inference_mode()`` in ``eval()`` mode;
each over ``--steps`` timed iterations after ``--warmup`` untimed ones. Per step, the wall-clock time and the
process CPU time are recorded; a run's throughput is batch size / median step time, "img/s" from wall-clock
time and "img/CPU-s" from CPU time. On a machine whose cores are shared with other jobs, wall-clock time measures
the neighbours as much as the model; CPU time does not count the time the process waits for a core, so with one
thread (``--threads 1``: no OpenMP thread spinning while its partner is descheduled) it is the steadier measure of
the work each implementation does. Both are reported.

Both models hold the same weights: the parent builds the HF model once, saves its state dict, and vitkit loads it
through ``create_model("cvt_13", checkpoint=...)``. Stochastic depth is off on both sides (HF's applies one rate per
stage to whole blocks, vitkit's a rate per block; with it off both compute exactly the same function).

Memory: every (model, mode, repeat) runs in a fresh Python subprocess, so neither side inherits the other's
allocator state. The child records its resident set size right after the model, optimiser and batch exist
(``/proc/self/statm``) and reads the peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) at the end; the reported
"peak MiB added" is the difference: what warm-up and the timed steps added on top of the model itself
(activations, gradients, optimiser state, workspace), measured the same way for both, including everything the
allocator took from the OS.

Runs alternate (vitkit first on even repeats, HF first on odd ones) so drifting machine load hits both; ratios are
per repeat, and the table shows their medians. Targets from issue 3: ≥ 1.3× faster for both, ≤ 0.8× the memory.

Measured (2 shared AMD EPYC cores, torch 2.14.1, transformers 5.24.0, ``--threads 1``, 3 repeats): training 1.00×
(img/s) / 1.01× (img/CPU-s), peak memory 0.71×; inference 1.13× / 1.13×, memory 0.53×. The memory target is met,
the speed target is not: about 65% of both models' time is the same GEMMs (linear layers of identical shapes).
vitkit's fused attention takes 0.77 s of a 6.4 s training step where Hugging Face's explicit score matrices take
1.17 s, and its cheaper memory comes from fused attention and the recomputed MLP activation (no extra time measured).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def hf_config():
    from vitkit.bench.hf_pairs import cvt_hf_config
    from vitkit.models import build_config

    return cvt_hf_config(build_config("cvt_13", drop_path_rate=0.0))


def build(side: str, weights: Path) -> torch.nn.Module:
    if side == "hf":
        from transformers import CvtForImageClassification

        model = CvtForImageClassification(hf_config())
        model.load_state_dict(torch.load(weights, weights_only=True))
        return model
    from vitkit import create_model

    return create_model("cvt_13", checkpoint=weights, drop_path_rate=0.0)


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def child(args: argparse.Namespace) -> None:
    """One measurement in this fresh process; prints a JSON line."""
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = build(args.side, Path(args.weights))
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    y = torch.randint(0, 1000, (args.batch_size,))

    def logits() -> torch.Tensor:
        out = model(x)
        return out if args.side == "vitkit" else out.logits

    if args.mode == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            loss = F.cross_entropy(logits(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        model.eval()

        def step() -> None:
            with torch.inference_mode():
                logits()

    base = rss_mb()
    for _ in range(args.warmup):
        step()
    wall, cpu = [], []
    for _ in range(args.steps):
        w, c = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"img_s": args.batch_size / statistics.median(wall),
                      "img_cpu_s": args.batch_size / statistics.median(cpu), "mem_mb": peak - base, "base_mb": base}))


def measure(side: str, mode: str, weights: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", "--side", side, "--mode", mode, "--weights", str(weights),
           "--batch-size", str(args.batch_size), "--image-size", str(args.image_size),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(args: argparse.Namespace) -> None:
    from transformers import CvtForImageClassification

    torch.manual_seed(0)
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "cvt_13_hf.bin"
        torch.save(CvtForImageClassification(hf_config()).state_dict(), weights)
        for r in range(args.repeats):
            for mode in ("train", "infer"):
                for side in ("vitkit", "hf") if r % 2 == 0 else ("hf", "vitkit"):
                    res = measure(side, mode, weights, args)
                    results.setdefault((side, mode), []).append(res)
                    print(f"repeat {r} {mode:5s} {side:6s} {res['img_s']:7.2f} img/s {res['img_cpu_s']:7.2f} "
                          f"img/CPU-s  +{res['mem_mb']:7.0f} MiB", flush=True)
    report(results, args)


def report(results: dict, args: argparse.Namespace) -> None:
    print(f"\ncvt_13, batch {args.batch_size}, {args.image_size}×{args.image_size}, float32, CPU, "
          f"{args.threads} thread(s), torch {torch.__version__}; medians over {args.repeats} repeats")
    print(f"| {'mode':5s} | {'metric':14s} | {'vitkit':>9s} | {'HF':>9s} | {'ratio':>6s} | target |")
    print("|-------|----------------|-----------|-----------|--------|--------|")
    metrics = [("img/s", "img_s", "≥ 1.3"), ("img/CPU-s", "img_cpu_s", "≥ 1.3"), ("peak MiB added", "mem_mb", "≤ 0.8")]
    for mode in ("train", "infer"):
        ours, theirs = results[("vitkit", mode)], results[("hf", mode)]
        for name, key, target in metrics:
            ratio = statistics.median(a[key] / b[key] for a, b in zip(ours, theirs, strict=True))
            a = statistics.median(o[key] for o in ours)
            b = statistics.median(t[key] for t in theirs)
            print(f"| {mode:5s} | {name:14s} | {a:9.2f} | {b:9.2f} | {ratio:5.2f}× | {target:6s} |")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads per run")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--side", choices=("vitkit", "hf"), help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=("train", "infer"), help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    cli_args = parse_args()
    child(cli_args) if cli_args.child else main(cli_args)
