"""scripts/check_claims.py: every claim it re-measures is still stated where it says, with the number it checks."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "scripts" / "check_claims.py"


def _module():
    spec = importlib.util.spec_from_file_location("check_claims", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_claim_is_stated_where_it_says_with_its_number():
    module = _module()
    for claim in module.CLAIMS:
        for file, text in claim.docs:
            content = (ROOT / file).read_text()
            assert text in " ".join(content.split()), f"{claim.name}: {file} no longer says {text!r}"
            numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)]
            assert any(claim.agrees(n) for n in numbers), f"{claim.name}: {text!r} in {file} is not {claim.documented}"


def test_tolerance_is_absolute_or_relative():
    module = _module()
    absolute = module.Claim("a", (), 0.98, 0.01, dict, "x")
    relative = module.Claim("r", (), 2.0, 0.15, dict, "x", relative=True)
    assert absolute.agrees(0.975) and not absolute.agrees(0.965)
    assert relative.agrees(1.75) and not relative.agrees(1.65)


def test_list_runs_and_names_the_quick_claims_only():
    out = subprocess.run([sys.executable, str(SCRIPT), "--list"], capture_output=True, text=True, check=True).stdout
    assert "vit_digits test top-1" in out and "README.md" in out
    assert "after 20 minutes" not in out  # slow claims need --slow
