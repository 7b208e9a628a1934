"""A bench's results as ``report.md`` (table + how each column was measured), ``report.json`` and ``plot.png``."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from vitkit.bench.config import BenchConfig, BenchConfigError
from vitkit.bench.run import ModelResult
from vitkit.viz.figures import pyplot, save_figure

REPORT_FILES = ("report.md", "report.json", "plot.png")
COLUMNS = ["model", "source", "params (M)", "GFLOPs", "train img/s", "infer img/s", "peak train mem (MiB)",
           "final top-1", "best top-1", "epochs", "train min", "min to target"]


def prepare_out(out: str | Path, *, overwrite: bool) -> Path:
    """The output folder, refused when it already holds a report (unless ``overwrite``)."""
    out = Path(out)
    existing = [name for name in REPORT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise BenchConfigError(f"{out} already holds a bench report ({', '.join(existing)})",
                               "choose another --out or pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    return out


def row(r: ModelResult, target: float | None) -> list[str]:
    to_target = "no target" if target is None else ("not reached" if r.minutes_to_target is None
                                                   else f"{r.minutes_to_target:.2f}")
    return [r.model, r.source, f"{r.params / 1e6:.3f}", f"{r.gflops:.4g}", f"{r.train_img_s:.1f}",
            f"{r.infer_img_s:.1f}", f"{r.peak_mem_mb:.0f}", f"{r.final_top1:.4f}", f"{r.best_top1:.4f}",
            f"{r.epochs:.2f}", f"{r.train_minutes:.2f}", to_target]


def write_report(cfg: BenchConfig, results: list[ModelResult], out: Path) -> list[Path]:
    env = environment(results)
    paths = [out / name for name in REPORT_FILES]
    paths[0].write_text(markdown(cfg, results, env))
    paths[1].write_text(json.dumps({"config": _config_dict(cfg), "environment": env,
                                    "results": [r.to_dict() for r in results]}, indent=2))
    plot(results, paths[2], title=f"{cfg.data.get('dataset', 'digits')}: {cfg.budget.describe()} per model")
    return paths


def environment(results: list[ModelResult]) -> dict[str, Any]:
    measured = results[0].measured if results else {}
    return {"device": measured.get("device"), "precision": measured.get("precision"),
            "throughput_batch_size": measured.get("batch_size"), "threads": measured.get("threads"),
            "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()}


def markdown(cfg: BenchConfig, results: list[ModelResult], env: dict[str, Any]) -> str:
    lines = [f"# vitkit bench: {', '.join(cfg.models)}", "",
             f"Data: `{cfg.data}`; recipe: `{cfg.task}`; budget: {cfg.budget.describe()} per model; seed {cfg.seed}.",
             "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(r, cfg.target_accuracy)) + " |" for r in results]
    lines += ["", "How each column was measured:", "",
              "- GFLOPs: multiply-adds of one forward pass of one image, as the papers count them, attention "
              "matmuls included (torch.utils.flop_counter.FlopCounterMode; fused attention counted by formula).",
              f"- Throughput: timm's definitions on a fixed random batch of {env['throughput_batch_size']}, "
              f"{env['precision']}, on {env['device']} (torch {env['torch']}): training step = forward + "
              "cross-entropy + backward + AdamW step; inference = forward in eval mode.",
              "- Peak train mem: memory the training steps add above the model, optimiser and batch (CUDA: "
              "max allocated; CPU: peak resident set size in a fresh process).",
              "- Top-1: validation split; final = the final weights, best = best validation. Epochs: epochs done "
              "(fractional when a time budget stops mid-epoch). Train min: time in training (validation "
              "excluded); min to target: training minutes at the first validation at or above "
              f"{cfg.target_accuracy if cfg.target_accuracy is not None else '(no target set)'}."]
    return "\n".join(lines) + "\n"


def plot(results: list[ModelResult], path: Path, *, title: str) -> None:
    """Top-1 against GFLOPs (one point per model) and against training time (one curve per model)."""
    fig, (ax_flops, ax_time) = pyplot().subplots(1, 2, figsize=(11, 4.2))
    for i, r in enumerate(results):
        colour = f"C{i}"
        ax_flops.scatter(r.gflops, r.final_top1, color=colour, s=50, zorder=3)
        ax_flops.annotate(r.model, (r.gflops, r.final_top1), textcoords="offset points", xytext=(6, 4), fontsize=8)
        minutes, accs = [m for m, _, _ in r.history], [a for *_, a in r.history]
        ax_time.plot(minutes, accs, "-o", color=colour, markersize=3, label=r.model)
    flops = [r.gflops for r in results]
    if max(flops) > 20 * min(flops):  # a log axis only when the models span more than an order of magnitude
        ax_flops.set_xscale("log")
    else:
        lo, hi = min(flops), max(flops)
        pad = 0.15 * (hi - lo) or 0.1 * hi
        ax_flops.set_xlim(lo - pad, hi + 2 * pad)  # room for the labels
        ax_flops.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
    ax_flops.set_xlabel("GFLOPs per image (multiply-adds, attention included)")
    ax_flops.set_ylabel("final validation top-1")
    ax_time.set_xlabel("training time (minutes, validation excluded)")
    ax_time.set_xlim(left=0)
    ax_time.set_ylabel("validation top-1")
    ax_time.legend(fontsize=8)
    for ax in (ax_flops, ax_time):
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _config_dict(cfg: BenchConfig) -> dict[str, Any]:
    return asdict(cfg)
