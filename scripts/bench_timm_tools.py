"""timm's own ``benchmark.py`` on a vitkit model beside a timm model, unmodified, side by side.

    git clone https://github.com/huggingface/pytorch-image-models /tmp/timm   # timm's scripts are not in its wheel
    PYTHONPATH=. python scripts/bench_timm_tools.py --benchmark-py /tmp/timm/benchmark.py \\
        [--models vitkit_cvt_13 vit_small_patch16_224] [--bench inference] [--batch-size 4] [--steps 5] [--rounds 2]

Each run is a fresh subprocess that imports vitkit (which registers ``vitkit_<preset>`` in timm's registry: timm
finds models only there, and ``benchmark.py`` cannot be told to import anything) and then executes ``benchmark.py``
as ``__main__`` with ``runpy``, passing the arguments through: the file itself is not touched. Its ``--result``
JSON is parsed; the models alternate round by round so that drifting machine load hits both, and the table gives
each model's median img/s and the ratio to the first model.

Measured (timm ``benchmark.py`` at commit aa4b5850, timm 1.0.31, torch 2.14.1, CPU, float32, batch 4, 2 warm-up + 5
timed steps). The 2 cores were shared with several other jobs (load average 10–13), so the absolute figures are
far below an idle machine's and only the side-by-side ratio means much. Both models cost ~4.5 GFLOPs an image.
    --bench both --rounds 2 (medians of 2):
        inference  vitkit_cvt_13 0.35 img/s   vit_small_patch16_224 0.55 img/s   (CvT-13 at 0.64× of ViT-S)
        training   vitkit_cvt_13 0.12 img/s   vit_small_patch16_224 0.17 img/s   (CvT-13 at 0.70× of ViT-S)
    --bench inference, single runs (load ~11): vitkit_cvt_13 0.88 / 0.49 img/s, vit_small 1.35 / 0.95 img/s.
timm's ``validate.py`` runs the same way (``python -c "import runpy, sys; import vitkit; sys.argv = ['validate.py',
DIR, '--model', 'vitkit_cvt_test', '--num-classes', '2', '--checkpoint', W, '--device', 'cpu'];
runpy.run_path('validate.py', run_name='__main__')"``): on 16 random 40×48 JPEGs in two classes it resolved
img_size 32, crop_pct 1.0, bilinear from the model's pretrained_cfg and reported top-1 50.0 (chance, as it should).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

RUNNER = ("import runpy, sys; import vitkit; sys.argv = ['benchmark.py', *sys.argv[1:]]; "
          "runpy.run_path({path!r}, run_name='__main__')")
KEYS = {"inference": ["infer_samples_per_sec"], "train": ["train_samples_per_sec"],
        "both": ["infer_samples_per_sec", "train_samples_per_sec"]}


def run_once(benchmark_py: Path, model: str, args: argparse.Namespace) -> dict:
    """One subprocess: vitkit imported, then timm's benchmark.py as __main__; its result JSON."""
    argv = ["--model", model, "--device", "cpu", "--bench", args.bench, "-b", str(args.batch_size),
            "--num-warm-iter", str(args.warmup), "--num-bench-iter", str(args.steps)]
    code = RUNNER.format(path=str(benchmark_py))
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True,
                         cwd=benchmark_py.parent).stdout
    return json.loads(out.split("--result", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark-py", type=Path, required=True, help="benchmark.py of a timm checkout")
    parser.add_argument("--models", nargs="+", default=["vitkit_cvt_13", "vit_small_patch16_224"])
    parser.add_argument("--bench", default="inference", choices=["inference", "train", "both"])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="at least 5 (benchmark.py logs every steps // 5)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    keys = KEYS[args.bench]
    rates: dict[str, dict[str, list[float]]] = {m: {k: [] for k in keys} for m in args.models}
    for r in range(args.rounds):
        order = args.models if r % 2 == 0 else args.models[::-1]
        for model in order:
            result = run_once(args.benchmark_py, model, args)
            for k in keys:
                rates[model][k].append(result[k])
            print(f"round {r}: {model}: " + ", ".join(f"{k} {result[k]}" for k in keys), flush=True)
    first = args.models[0]
    for k in keys:
        base = statistics.median(rates[first][k])
        for model in args.models:
            median = statistics.median(rates[model][k])
            print(f"{k:24s} {model:28s} {median:8.2f} img/s   ×{median / base:.2f} of {first}")


if __name__ == "__main__":
    main()
