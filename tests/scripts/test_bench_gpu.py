"""scripts/bench_gpu.py: the peak table matches device names most-specific first, and without a GPU the script says
so and exits with status 2 instead of measuring anything."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[2] / "scripts" / "bench_gpu.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("name", "peak"), [
    ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H200", 989.4),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA L40S", 362.1), ("NVIDIA L4", 121.0), ("Tesla V100-SXM2-32GB", None),
])
def test_peak_is_looked_up_by_device_name(name, peak):
    assert _module().peak_tflops(name) == peak


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is available: the script would measure it")
def test_without_a_gpu_the_script_says_so_and_exits_2():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SCRIPT.parents[1]), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and "no GPU available" in done.stderr and not done.stdout
