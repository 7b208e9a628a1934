"""One metric of several runs against wall-clock minutes: a figure and a table (same-budget comparisons).

    python scripts/compare_runs.py runs/detr_digits/version_0 runs/rtdetr_digits/version_0 --metric val/AP \
        --out outputs/detr_vs_rtdetr_ap.png

Times come from the runs' TensorBoard events (each scalar carries the wall-clock time it was written); minute 0 is
the run's first event, so the minutes include validation, as a ``trainer.max_time`` budget does. The table gives the
metric's last value at or before each minute mark, its final value, and the first minute it reached each other run's
final value.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vitkit.viz.figures import pyplot, save_figure


def read_minutes(run_dir: Path, metric: str) -> tuple[list[float], list[float]]:
    """``(minutes since the run's first event, values)`` of ``metric`` in ``run_dir``'s TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(run_dir.glob("events.out.tfevents.*"))
    if not events:
        raise SystemExit(f"{run_dir}: no TensorBoard events file (events.out.tfevents.*) — give a run folder "
                         f"written by vitkit fit with its default loggers")
    start, points = None, []
    for path in events:
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        first = acc.FirstEventTimestamp()
        start = first if start is None else min(start, first)
        if metric in acc.Tags()["scalars"]:
            points += [(e.wall_time, e.value) for e in acc.Scalars(metric)]
    if not points:
        raise SystemExit(f"{run_dir}: no {metric!r} in its TensorBoard events")
    points.sort()
    return [(t - start) / 60 for t, _ in points], [v for _, v in points]


def value_at(minutes: list[float], values: list[float], mark: float) -> float | None:
    before = [v for m, v in zip(minutes, values, strict=True) if m <= mark]
    return before[-1] if before else None


def first_reaching(minutes: list[float], values: list[float], level: float) -> float | None:
    return next((m for m, v in zip(minutes, values, strict=True) if v >= level), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="+", help="runs/<name>/version_<n> folders")
    p.add_argument("--metric", default="val/AP")
    p.add_argument("--marks", type=float, nargs="+", default=[2.5, 5, 10, 15, 20], help="minutes for the table")
    p.add_argument("--labels", nargs="+", default=None, help="one per run (default: the run's name)")
    p.add_argument("--out", type=Path, required=True, help="the figure (.png)")
    args = p.parse_args()
    labels = args.labels or [r.parent.name for r in args.runs]
    series = {label: read_minutes(run, args.metric) for label, run in zip(labels, args.runs, strict=True)}

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, (minutes, values) in series.items():
        ax.plot(minutes, values, marker="o", markersize=3, label=f"{label} (final {values[-1]:.3f})")
    ax.set_xlabel("wall-clock minutes (validation included)")
    ax.set_ylabel(args.metric)
    ax.set_title(f"{args.metric} against time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, args.out, dpi=120)

    print("| run | " + " | ".join(f"{m:g} min" for m in args.marks) + " | final | minutes | "
          + " | ".join(f"first ≥ {other}'s final" for other in series) + " |")
    print("|---" * (len(args.marks) + 3 + len(series)) + "|")
    for label, (minutes, values) in series.items():
        at = [value_at(minutes, values, m) for m in args.marks]
        reach = [first_reaching(minutes, values, other[1][-1]) for other in series.values()]
        cells = [f"{v:.3f}" if v is not None else "—" for v in at] + [f"{values[-1]:.3f}", f"{minutes[-1]:.1f}"]
        cells += [f"{r:.1f}" if r is not None else "never" for r in reach]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
