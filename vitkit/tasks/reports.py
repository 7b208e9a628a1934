"""Per-class evaluation reports written beside a run's metrics: CSV tables and a short summary for the log."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

from vitkit.atomic import atomic_write_text

SHOWN = 20  # classes listed in a summary line before only the weakest and strongest are shown


def write_csv(path: str | Path, header: Sequence[str], rows: Sequence[Sequence]) -> Path:
    """``header`` and ``rows`` as a CSV file (floats with 6 decimals), written atomically."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows([f"{v:.6f}" if isinstance(v, float) else v for v in row] for row in rows)
    return atomic_write_text(path, text.getvalue())


def summary(title: str, names: Sequence[str], values: Sequence[float]) -> str:
    """``title: name value, ...`` — every class up to 20, else the five weakest and five strongest (NaN: no
    ground truth, left out)."""
    pairs = sorted(((v, n) for n, v in zip(names, values, strict=True) if not math.isnan(v)), key=lambda p: p[0])
    if len(pairs) > SHOWN:
        pairs = [*pairs[:5], (math.nan, "…"), *pairs[-5:]]
    listed = ", ".join(n if math.isnan(v) else f"{n} {v:.3f}" for v, n in pairs)
    return f"{title} (weakest first): {listed}"
