"""GPU check: the numbers only a GPU can give, measured side by side in one run and printed as one table (issue 13).

    PYTHONPATH=. python scripts/gpu_check.py --out gpu_check.json        # on a machine with one CUDA GPU, ~6-8 min
    PYTHONPATH=. python scripts/gpu_check.py --dry-run                   # every row at tiny sizes on the CPU, ~20 s

Rows (each a few table lines; the ``check`` column is stable, ``model`` says what ran):
- ``SDPA backend``: per family (ViT, CvT, DETR, Image Transformer training forward and cached sampling step), the
  SDPA kernels a bf16 training forward really runs (from the profiler) and whether it runs with SDPA restricted to
  flash, memory-efficient, cuDNN, math alone and to the fused set (``vitkit.bench.sdpa``). A family whose
  attention cannot run on the fused set is on math: a finding.
- ``ViT-B/16`` and ``ViT-S/16`` bf16 training (forward, cross-entropy, backward, fused AdamW; bf16 autocast over
  fp32 weights, what ``--trainer.precision bf16-mixed`` does), eager and ``torch.compile``: images/s and model FLOPs
  utilisation against the chip's dense bf16 peak (``vitkit.bench.gpu``; goal ≥ 50% compiled), with the graph
  breaks ``torch.compile`` met.
- ``CvT-13 vs HF``, ``DETR-R50 vs HF``, ``RT-DETR-R50vd vs HF`` (the pairings of
  ``vitkit.bench.hf_pairs.PAIRS``): bf16 training step and inference images/s, and the peak memory
  each adds, with the same weights (``vitkit.bench.hf_pairs``; goal ≥ 1.5×). The largest output difference (fp32,
  eval mode) proves the weights are the same.
- ``Image Transformer sampling``: 32×32×3 images/s sampled with the KV cache and without, and the ratio. Each side
  is first estimated (cached: a few steps; uncached: the prefix forward at a few lengths) and then run in full when
  the estimate fits the row's budget, checking both give the same images; otherwise the estimate is reported.
- ``CIFAR-10 input pipeline``: ``configs/vit/cifar10.yaml`` (its model, batch size and augmentation, bf16-mixed) as
  ``vitkit fit`` builds it, on fake 32×32 data with the workers CIFAR-10 would get, against the same run fed one
  batch over and over (``vitkit.bench.pipeline``): images/s, GPU utilisation, and which of the two bounds training.

Timing: warm-up steps first (compilation happens there), then timed steps until a count or the row's time budget,
with CUDA synchronised around the timed steps; peak memory is ``torch.cuda.max_memory_allocated`` above what was
held before the timed steps. A row that fails prints its error in the table and the script goes on (exit status 1
at the end); each finished row is also written to ``--out`` at once, so a run cut short keeps what it measured.
``--rows`` runs a subset. Without a CUDA device (and without ``--dry-run``) the script says so and exits 2.

``--dry-run`` runs the same code on the CPU with tiny presets, small batches, ``torch.compile`` with the ``eager``
backend (Dynamo tracing and graph-break counting, no code generation) and a nominal 1 TFLOP/s peak, so every row
is exercised; ``tests/scripts/test_gpu_check.py`` runs it.

On a GPU machine: the dev environment (``pip install -e '.[dev]'``: torch with CUDA, transformers, timm, lightning),
then from the repository root ``PYTHONPATH=. python scripts/gpu_check.py --out gpu_check.json`` (one GPU; give it
about 10 minutes: the compiled ViTs take most of the time; ``--rows sdpa pairs`` reruns a subset after a fix).

Measured: NOT YET RUN ON A GPU. No GPU was lent to the task that wrote this script; every figure above is still to be
measured, and the goals (ViT-B/16 compiled MFU ≥ 50%, vitkit / Hugging Face ≥ 1.5× for CvT and DETR) are unchecked.
The dry run's figures (tiny models on a shared CPU) say only that every row runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from gpu_check_rows import Context, Line, Sizes, cifar_rows, pair_rows, sampling_rows, sdpa_rows, vit_rows

from vitkit.bench.gpu import peak_tflops

NO_GPU = 2  # exit status when no CUDA device is available


GPU = Sizes(vit=(("ViT-B/16", "vit_base_patch16_224", 128, 224), ("ViT-S/16", "vit_small_patch16_224", 256, 224)),
            cvt=("cvt_13", 64, 224), detr=("detr_r50", 8, 512), rtdetr=("rtdetr_r50vd", 8, 640),
            sampler=("image_transformer_cifar10", 8), cifar=("", 0, 400, 30), steps=30, warmup=3, budget_s=8.0,
            sample_budget_s=30.0, compile_backend="inductor")
DRY = Sizes(vit=(("ViT-B/16", "vit_test", 4, 32), ("ViT-S/16", "vit_test", 2, 32)),
            cvt=("cvt_test", 2, 32), detr=("detr_test", 2, 64),
            rtdetr=("rtdetr_test", 2, 64),
            sampler=("image_transformer_test", 2), cifar=("vit_test", 8, 6, 2), steps=2, warmup=1, budget_s=0.5,
            sample_budget_s=20.0, compile_backend="eager")


ROWS: dict[str, Callable[[Context], list[Line]]] = {
    "sdpa": sdpa_rows, "vit": vit_rows, "pairs": pair_rows, "sampling": sampling_rows, "cifar": cifar_rows}


def _cell(value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def table(lines: list[Line], seconds: dict[str, float]) -> str:
    header = ("check", "model", "measure", "vitkit", "reference", "ratio", "notes")
    rows = [header] + [(ln.check, ln.model, ln.measure, _cell(ln.vitkit), _cell(ln.reference),
                        "-" if ln.ratio is None else f"{ln.ratio:.2f}×", " ".join(ln.notes.split())) for ln in lines]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    out = []
    for i, r in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + f" | {r[-1]} |")
        if i == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|---|")
    out.append("seconds per row: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    return "\n".join(out)


def _device(args: argparse.Namespace) -> tuple[torch.device, float | None, str] | None:
    if args.dry_run:
        torch.set_num_threads(1)  # tiny ops: two OpenMP threads on shared cores only spin against each other
        peak = args.peak_tflops or 1.0
        return torch.device("cpu"), peak, f"nominal {peak:g} TFLOP/s (dry run on the CPU)"
    if not torch.cuda.is_available():
        print("gpu_check.py: no GPU available (torch.cuda.is_available() is False): nothing measured. Run it on a "
              "machine with a CUDA GPU, or with --dry-run to check the script on the CPU.", file=sys.stderr)
        return None
    name = torch.cuda.get_device_name()
    if not torch.cuda.is_bf16_supported():
        print(f"gpu_check.py: {name} has no bf16 support: nothing measured.", file=sys.stderr)
        return None
    peak = args.peak_tflops or peak_tflops(name)
    note = f"{name}, dense bf16 peak {peak:g} TFLOP/s" if peak else f"{name}: peak unknown (give --peak-tflops)"
    return torch.device("cuda"), peak, note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="every row at tiny sizes on the CPU")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of a chip not in the table")
    parser.add_argument("--budget-s", type=float, default=480.0, help="rows not started by then are skipped")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON (after every row)")
    args = parser.parse_args()
    found = _device(args)
    if found is None:
        return NO_GPU
    device, peak, peak_note = found
    ctx = Context(device, DRY if args.dry_run else GPU, peak, peak_note, args.dry_run)
    print(f"gpu_check: {peak_note}; torch {torch.__version__}", flush=True)
    start, lines, seconds = time.perf_counter(), [], {}
    for name in args.rows:
        row_start = time.perf_counter()
        if row_start - start > args.budget_s:
            lines.append(Line(name, "-", "skipped", None, notes=f"over the {args.budget_s:g} s budget"))
            continue
        new = ctx.guarded(name, "-", partial(ROWS[name], ctx))
        lines += new
        seconds[name] = time.perf_counter() - row_start
        print(table(new, {name: seconds[name]}), file=sys.stderr, flush=True)
        if args.out:
            args.out.write_text(json.dumps(_json(ctx, lines, seconds), indent=2))
    print(table(lines, seconds))
    print(f"total {time.perf_counter() - start:.1f} s")
    return 1 if ctx.failed else 0


def _json(ctx: Context, lines: list[Line], seconds: dict[str, float]) -> dict:
    return {"device": ctx.peak_note, "dry_run": ctx.dry_run, "torch": torch.__version__, "seconds": seconds,
            "lines": [{"check": ln.check, "model": ln.model, "measure": ln.measure, "vitkit": ln.vitkit,
                       "reference": ln.reference, "ratio": ln.ratio, "notes": ln.notes, "details": ln.extra}
                      for ln in lines]}


if __name__ == "__main__":
    sys.exit(main())
