"""Compare classifiers like for like: same data, recipe and budget → report.md, report.json, plot.png."""

from __future__ import annotations

import argparse
import dataclasses


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help="bench YAML (configs/bench/*.yaml): models, data, task, budget, ...")
    parser.add_argument("--models", nargs="+", help="vitkit presets or timm classifier names (replaces the config's)")
    parser.add_argument("--dataset", help="dataset name (digits, cifar10, imagefolder, fake, ...)")
    parser.add_argument("--root", help="dataset root (cifar files, image folder)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="budget per model in epochs (replaces the config's budget)")
    budget.add_argument("--minutes", type=float, help="budget per model in minutes of training")
    parser.add_argument("--target", type=float, help="target validation top-1 for 'time to target'")
    parser.add_argument("--out", help="output folder (default: the config's out)")
    parser.add_argument("--overwrite", action="store_true", help="replace a report already in the output folder")
    parser.add_argument("--progress", action="store_true", help="show Lightning's progress bars")


def run(args: argparse.Namespace) -> int:
    from vitkit.bench.config import load_bench_config
    from vitkit.bench.report import COLUMNS, prepare_out, row, write_report
    from vitkit.bench.run import run_bench

    overrides = {"models": args.models, "out": args.out, "target_accuracy": args.target}
    if args.epochs is not None or args.minutes is not None:
        overrides["budget"] = {"epochs": args.epochs} if args.epochs is not None else {"minutes": args.minutes}
    cfg = load_bench_config(args.config, **overrides)
    data = {**cfg.data, **{k: v for k, v in {"dataset": args.dataset, "root": args.root}.items() if v is not None}}
    cfg = dataclasses.replace(cfg, data=data)
    out = prepare_out(cfg.out, overwrite=args.overwrite)
    results = run_bench(cfg, out, progress=args.progress)
    paths = write_report(cfg, results, out)
    print(" | ".join(COLUMNS))
    for r in results:
        print(" | ".join(row(r, cfg.target_accuracy)))
    print("written: " + ", ".join(str(p) for p in paths))
    return 0
