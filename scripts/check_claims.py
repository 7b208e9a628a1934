"""Re-measure the quick numbers that the README and the config headers document, and print documented vs measured.

    make check-claims                                   # every quick claim (about 25 minutes on 2 idle CPU cores)
    python scripts/check_claims.py --only vit_digits     # claims whose name contains a word
    python scripts/check_claims.py --list                # the claims, where each is documented, and their commands

Each claim names the text that documents it (file and the exact words holding the number: a test checks that the
words are still there, so a document and this table cannot drift apart), the documented value and the tolerance
within which a re-run counts as agreeing. Training claims are seeded and deterministic on the CPU up to the order of
floating-point sums; their tolerance covers that. Speed ratios are re-measured side by side in one run, but they
move with the load on the machine: on a machine whose cores other jobs keep busy, a ratio outside its tolerance is
a reason to re-run on a quiet machine before it is a finding. Every run writes under a temporary folder; the
repository is left as it was. Exit status 1 when any claim is outside its tolerance.

The slow claims (the 20-minute DETR digits budget, the 7-minute Image Transformer digits run) are measured only with
``--slow``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
VITKIT = [PYTHON, "-m", "vitkit.cli"]


@dataclass(frozen=True)
class Claim:
    name: str
    docs: tuple[tuple[str, str], ...]  # (file relative to the repository root, the exact words in it that state it)
    documented: float
    tolerance: float  # |measured - documented| allowed; relative to documented when `relative`
    measure: Callable[[Path], dict[str, float]]  # work dir → {measurement name: value}; shared by claims
    key: str  # which of measure's values this claim reads
    relative: bool = False
    slow: bool = False

    def agrees(self, measured: float) -> bool:
        allowed = self.tolerance * abs(self.documented) if self.relative else self.tolerance
        return abs(measured - self.documented) <= allowed + 1e-12


def run(command: list[str], work: Path) -> str:
    """Run ``command`` in the repository root; its stdout and stderr together; a failure stops the check."""
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    output = done.stdout + done.stderr
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}):\n{output[-3000:]}")
    (work / "output.txt").open("a").write(output)
    return output


def number(pattern: str, text: str) -> float:
    found = re.findall(pattern, text)
    if not found:
        raise RuntimeError(f"no match for {pattern!r} in the output")
    return float(found[-1])


def last_metric(run_root: Path, column: str) -> float:
    """The last logged value of ``column`` in the metrics.csv of the only run under ``run_root``."""
    (metrics,) = run_root.glob("*/version_*/metrics.csv")
    values = [row[column] for row in csv.DictReader(metrics.open()) if row.get(column)]
    if not values:
        raise RuntimeError(f"{metrics} has no {column}")
    return float(values[-1])


def fit_and_test(config: str, column: str, *test_flags: str) -> Callable[[Path], dict[str, float]]:
    """``vitkit fit -c config``, then ``vitkit test`` of its final weights (``last.ckpt``): the test ``column``."""

    def measure(work: Path) -> dict[str, float]:
        run([*VITKIT, "fit", "-c", config, f"--trainer.default_root_dir={work / 'fit'}"], work)
        (last,) = (work / "fit").glob("*/version_*/checkpoints/last.ckpt")
        run([*VITKIT, "test", "-c", config, "--ckpt_path", str(last), f"--trainer.default_root_dir={work / 'test'}",
             *test_flags], work)
        return {column: last_metric(work / "test", column)}

    return measure


def fit_last(config: str, column: str) -> Callable[[Path], dict[str, float]]:
    def measure(work: Path) -> dict[str, float]:
        run([*VITKIT, "fit", "-c", config, f"--trainer.default_root_dir={work}"], work)
        return {column: last_metric(work, column)}

    return measure


def bench_digits(work: Path) -> dict[str, float]:
    run([*VITKIT, "bench", "-c", "configs/bench/digits.yaml", "--out", str(work / "bench")], work)
    results = json.loads((work / "bench" / "report.json").read_text())["results"]
    return {f"{r['model']} final": r["final_top1"] for r in results}


def ddp_speedup(work: Path) -> dict[str, float]:
    out = run([PYTHON, "scripts/bench_ddp.py", "--workloads", "fake", "--parts", "throughput", "--steps", "10",
               "--warmup", "3"], work)
    rate = {p: number(rf"fake\s+{p} process\(es\) × 1 thread\(s\):.*?([\d.]+) images/s", out) for p in (1, 2)}
    return {"2 vs 1 process": rate[2] / rate[1]}


def presets(work: Path) -> dict[str, float]:
    out = run([*VITKIT, "models"], work)
    values = {}
    for name in ("vit_base_patch16_224", "cvt_13", "detr_r50"):
        params, gflops = re.search(rf"^{name}\s+([\d.]+)M\s+([\d.]+)", out, re.M).groups()
        values[f"{name} params"], values[f"{name} GFLOPs"] = float(params), float(gflops)
    return values


def script(args: list[str], patterns: dict[str, str]) -> Callable[[Path], dict[str, float]]:
    def measure(work: Path) -> dict[str, float]:
        out = run([PYTHON, *args], work)
        return {key: number(pattern, out) for key, pattern in patterns.items()}

    return measure


VIT_DIGITS = fit_and_test("configs/vit/digits.yaml", "test/acc1")
VIT_DDP = fit_and_test("configs/vit/digits_ddp.yaml", "test/acc1", "--trainer.devices", "1",
                       "--trainer.strategy", "auto")
ITF_DIGITS = fit_and_test("configs/image_transformer/digits.yaml", "test/bits_per_dim")
CVT_DIGITS = fit_last("configs/cvt/digits.yaml", "val/acc1")
DETR_DIGITS = fit_last("configs/detr/digits.yaml", "val/AP")
OVERFIT = script(["scripts/detr_overfit_sanity.py"], {"AP50": r"memorised canvases = ([\d.]+)"})
VIT_TIMM = script(["scripts/bench_vit_vs_timm.py", "--threads", "1"],
                  {mode: rf"{mode}\s+cpu\s+[\d.]+\s+[\d.]+\s+([\d.]+)" for mode in ("train", "infer")})
CVT_HF = script(["scripts/bench_cvt_vs_hf.py", "--threads", "1"],
                {f"{mode} {metric}": rf"\| {mode}\s*\| {label}\s*\|[^|]+\|[^|]+\|\s*([\d.]+)×"
                 for mode in ("train", "infer")
                 for metric, label in (("speed", "img/CPU-s"), ("memory", "peak MiB added"))})
DETR_HF = script(["scripts/bench_detr_vs_hf.py", "--threads", "1", "--repeats", "5"],
                 {mode: rf"(?m)^\| {mode} \(CPU, n=\d+\).*\|\s*([\d.]+)x \|\s*$" for mode in ("train", "infer")})
RTDETR_HF = script(["scripts/bench_rtdetr_vs_hf.py", "--threads", "2", "--repeats", "3"],
                   {mode: rf"(?m)^\| {mode} \(CPU, n=\d+\).*\|\s*([\d.]+)x \|\s*$" for mode in ("train", "infer")})
ITF_SAMPLING = script(["scripts/bench_image_transformer.py", "--threads", "1", "--sizes", "16"],
                      {"speedup": r"s: ([\d.]+)× faster; identical"})

README = "README.md"
WIDTHS = (45, 38, 10, 8, 9, 7)  # the result table's columns
CLAIMS = [
    Claim("vit_digits test top-1", ((README, "digits test accuracy: 0.9805"),
                                    ("configs/vit/digits.yaml", "held-out test top-1 0.981")),
          0.981, 0.01, VIT_DIGITS, "test/acc1"),
    Claim("vit_digits_ddp test top-1", (("configs/vit/digits_ddp.yaml", "held-out test top-1 0.981"),), 0.981, 0.015,
          VIT_DDP, "test/acc1"),
    Claim("cvt_digits val top-1", (("configs/cvt/digits.yaml", "val top-1 0.986"),), 0.986, 0.015, CVT_DIGITS,
          "val/acc1"),
    Claim("bench digits: vit_digits final top-1", (("configs/bench/digits.yaml", "vit_digits 0.944"),), 0.944, 0.015,
          bench_digits, "vit_digits final"),
    Claim("bench digits: cvt_digits final top-1", (("configs/bench/digits.yaml", "cvt_digits 0.986"),), 0.986, 0.015,
          bench_digits, "cvt_digits final"),
    Claim("detr digits overfit AP50", (("configs/detr/digits.yaml", "AP50 1.000 on them"),), 1.0, 0.05, OVERFIT,
          "AP50"),
    Claim("vit_base_patch16_224 params (M)", ((README, "86.57M"),), 86.57, 0.005, presets,
          "vit_base_patch16_224 params"),
    Claim("vit_base_patch16_224 GFLOPs", ((README, "17.56"),), 17.56, 0.005, presets, "vit_base_patch16_224 GFLOPs"),
    Claim("cvt_13 params (M)", ((README, "20.00M"),), 20.00, 0.005, presets, "cvt_13 params"),
    Claim("cvt_13 GFLOPs", ((README, "4.57, 7.18"),), 4.57, 0.005, presets, "cvt_13 GFLOPs"),
    Claim("detr_r50 params (M)", ((README, "41.52M"),), 41.52, 0.005, presets, "detr_r50 params"),
    Claim("detr_r50 GFLOPs", ((README, "81.2 (R50 at 800×1066)"),), 81.2, 0.1, presets, "detr_r50 GFLOPs"),
    Claim("ViT-S/16 vs timm, training step", ((README, "training step 1.00×, inference 1.00×"),
                                              ("scripts/bench_vit_vs_timm.py", "training step 1.00× by CPU time")),
          1.00, 0.15, VIT_TIMM, "train", relative=True),
    Claim("ViT-S/16 vs timm, inference", ((README, "inference 1.00× (the same speed"),
                                          ("scripts/bench_vit_vs_timm.py", "inference 1.00× (13.48")),
          1.00, 0.15, VIT_TIMM, "infer", relative=True),
    Claim("CvT-13 vs HF, training step", ((README, "training step 1.00×"),
                                          ("scripts/bench_cvt_vs_hf.py", "training 1.00×")),
          1.00, 0.15, CVT_HF, "train speed", relative=True),
    Claim("CvT-13 vs HF, inference", ((README, "inference 1.13× faster"),
                                      ("scripts/bench_cvt_vs_hf.py", "inference 1.13×")),
          1.13, 0.15, CVT_HF, "infer speed", relative=True),
    Claim("CvT-13 vs HF, training peak memory", ((README, "peak memory 0.71× / 0.53×"),
                                                 ("scripts/bench_cvt_vs_hf.py", "peak memory 0.71×")),
          0.71, 0.15, CVT_HF, "train memory", relative=True),
    Claim("CvT-13 vs HF, inference peak memory", ((README, "peak memory 0.71× / 0.53×"),
                                                  ("scripts/bench_cvt_vs_hf.py", "memory 0.53×")),
          0.53, 0.15, CVT_HF, "infer memory", relative=True),
    Claim("DETR R50 vs HF, training step", ((README, "training step 1.17×, inference 1.28×"),
                                            ("scripts/bench_detr_vs_hf.py", "training step 1.17x")),
          1.17, 0.15, DETR_HF, "train", relative=True),
    Claim("DETR R50 vs HF, inference", ((README, "inference 1.28× faster"),
                                        ("scripts/bench_detr_vs_hf.py", "inference 1.28x")),
          1.28, 0.15, DETR_HF, "infer", relative=True),
    Claim("RT-DETR R50vd vs HF, training step", ((README, "training step 1.16×, inference 1.32× faster"),
                                                 ("scripts/bench_rtdetr_vs_hf.py", "8.788 | 1.16x")),
          1.16, 0.15, RTDETR_HF, "train", relative=True),
    Claim("RT-DETR R50vd vs HF, inference", ((README, "inference 1.32× faster"),
                                             ("scripts/bench_rtdetr_vs_hf.py", "3.089 | 1.32x")),
          1.32, 0.15, RTDETR_HF, "infer", relative=True),
    Claim("Image Transformer cached sampling speed-up", ((README, "sampling 45× faster with the cache"),
                                                         ("scripts/bench_image_transformer.py", "45× faster")),
          45, 0.25, ITF_SAMPLING, "speedup", relative=True),
    Claim("DDP, 2 vs 1 CPU process (5.4M ViT)", ((README, "1.83× throughput with 2 processes"),
                                                 ("scripts/bench_ddp.py", "1.83× the one-process throughput")),
          1.83, 0.15, ddp_speedup, "2 vs 1 process", relative=True),
    Claim("image_transformer_digits test bits/dim", (("configs/image_transformer/digits.yaml", "test bits/dim 1.75"),),
          1.75, 0.05, ITF_DIGITS, "test/bits_per_dim", slow=True),
    Claim("detr_digits val AP after 20 minutes", (("configs/detr/digits.yaml", "AP 0.358"),), 0.358, 0.06,
          DETR_DIGITS, "val/AP", slow=True),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=None, help="claims whose name contains any of these words")
    parser.add_argument("--slow", action="store_true", help="also the slow claims (20-minute budgets)")
    parser.add_argument("--list", action="store_true", help="list the claims and exit")
    args = parser.parse_args()
    claims = [c for c in CLAIMS if (args.slow or not c.slow)
              and (args.only is None or any(w in c.name for w in args.only))]
    if args.list:
        for c in claims:
            print(f"{c.name:<45} " + "; ".join(f"{file}: {text!r}" for file, text in c.docs))
        return 0
    measured: dict[Callable, dict[str, float]] = {}
    rows, failed = [], 0
    for claim in claims:
        if claim.measure not in measured:
            start = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="check_claims_") as work:
                try:
                    measured[claim.measure] = claim.measure(Path(work))
                except RuntimeError as e:
                    measured[claim.measure] = {}
                    print(f"{claim.name}: {e}", file=sys.stderr)
            print(f"measured {claim.name} ... in {time.perf_counter() - start:.0f} s", flush=True)
        value = measured[claim.measure].get(claim.key)
        ok = value is not None and claim.agrees(value)
        failed += not ok
        tol = f"±{claim.tolerance:.0%}" if claim.relative else f"±{claim.tolerance:g}"
        files = ", ".join(dict.fromkeys(file for file, _ in claim.docs))
        shown = "—" if value is None else f"{value:.4g}"
        rows.append((claim.name, files, f"{claim.documented:g}", shown, tol, "ok" if ok else "DIFFERS"))
    header = ("claim", "documented in", "documented", "measured", "tolerance", "")
    print("\n| " + " | ".join(f"{h:<{w}}" for h, w in zip(header, WIDTHS, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in WIDTHS) + "|")
    for r in rows:
        print("| " + " | ".join(f"{c:<{w}}" for c, w in zip(r, WIDTHS, strict=True)) + " |")
    print(f"\n{len(rows) - failed} of {len(rows)} claims within tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
