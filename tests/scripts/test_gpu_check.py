"""scripts/gpu_check.py, the one GPU check (it absorbed scripts/bench_gpu.py): the peak table matches device names
most-specific first; without a GPU the script says so and exits 2; and its dry run, every row at tiny sizes on the
CPU, prints every line of the table with numbers (and the vitkit / Hugging Face pairs hold the same weights), so the
script cannot rot before a GPU runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vitkit.bench.gpu import peak_tflops

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.py"
NUMBER = re.compile(r"^-?\d+(\.\d+)?(e[-+]\d+)?$")
KERNEL = r"(flash|efficient|cudnn|math|overrideable)×\d+"
BACKENDS = re.compile(rf"^{KERNEL}(, {KERNEL})*$")
# (check, measure) of every line → what its vitkit and reference cells hold on the CPU: "nn" numbers, "n-" a number
# and "-", "kernels" SDPA kernels and "-", "any" anything ("-" for what only CUDA measures)
LINES = {
    **{("SDPA backend", m): "kernels" for m in ("ViT train forward", "CvT train forward",
                                                "DETR train forward (padding mask)", "Image Transformer train forward",
                                                "Image Transformer cached sampling step")},
    **{(f"ViT-{v}/16 bf16 {mode}", m): "nn" if mode == "compile" or m.startswith("MFU") else "n-"
       for v in "BS" for mode in ("eager", "compile") for m in ("train img/s (ref: eager)", "MFU % (ref: goal)")},
    **{(pair, f"{mode} {m}"): "nn" if m.startswith("img/s") else "any"
       for pair in ("CvT-13 vs HF", "DETR-R50 vs HF", "RT-DETR-R50vd vs HF") for mode in ("train", "infer")
       for m in ("img/s (ref: HF)", "peak GiB added (ref: HF)")},
    ("Image Transformer sampling", "3×4×4 img/s cached (ref: uncached)"): "nn",
    ("CIFAR-10 input pipeline", "train img/s: pipeline (ref: one batch repeated)"): "nn",
    ("CIFAR-10 input pipeline", "GPU utilisation % (ref: one batch repeated)"): "any",
}
CELLS = {"nn": (NUMBER, NUMBER), "n-": (NUMBER, re.compile("^-$")), "kernels": (BACKENDS, re.compile("^-$")),
         "any": (re.compile(".+"), re.compile(".+"))}

def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


@pytest.mark.parametrize(("name", "peak"), [
    ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H200", 989.4),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA L40S", 362.1), ("NVIDIA L4", 121.0), ("Tesla V100-SXM2-32GB", None),
])
def test_peak_is_looked_up_by_device_name(name, peak):
    assert peak_tflops(name) == peak


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is available: the script would measure it")
def test_without_a_gpu_the_script_says_so_and_exits_2():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 2 and "no GPU available" in done.stderr and not done.stdout


def _table(stdout: str) -> dict[tuple[str, str], list[str]]:
    rows = [[c.strip() for c in line[2:-2].split(" | ")] for line in stdout.splitlines() if line.startswith("| ")]
    assert rows and rows[0][:3] == ["check", "model", "measure"], stdout
    return {(r[0], r[2]): r for r in rows[1:]}


def test_dry_run_prints_every_line_with_numbers(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)], capture_output=True,
                          text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = _table(done.stdout)
    for key, kind in LINES.items():
        assert key in table, f"{key} missing from\n{done.stdout}"
        cells, patterns = table[key][3:5], CELLS[kind]
        assert all(p.match(c) for p, c in zip(patterns, cells, strict=True)), (key, table[key])
        assert kind not in ("nn", "n-") or float(cells[0]) > 0, (key, table[key])
    assert not [k for k in table if k[1] == "skipped"], done.stdout  # every pair is measured, RT-DETR's too
    saved = json.loads(out.read_text())["lines"]
    assert len(saved) == len(table)
    details = [line["details"] for line in saved]
    diffs = [d["max_abs_diff"] for d in details if "max_abs_diff" in d]
    assert len(diffs) >= 6 and max(diffs) < 1e-4  # the same weights on both sides of every pair
    breaks = [d["graph_breaks"] for d in details if "graph_breaks" in d]
    assert breaks == [0, 0]  # ViT-B and ViT-S compile whole: no graph break
