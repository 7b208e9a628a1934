"""List the model presets with their parameters and GFLOPs."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'vit_*'")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP count (faster)")


def run(args: argparse.Namespace) -> int:
    import torch

    from vitkit.bench.flops import count_gflops
    from vitkit.models import build_model, get_preset, list_models

    names = list_models(args.pattern)
    if not names:
        print(f"no preset matches {args.pattern!r}")
        return 1
    print(f"{'preset':<28} {'params':>10} {'GFLOPs':>9}  {'input':<12} description")
    for name in names:
        preset = get_preset(name)
        shape = preset.input_shape
        with torch.device("meta"):
            params = sum(p.numel() for p in build_model(name).parameters())
        flops = "-" if args.no_flops or shape is None else f"{count_gflops(build_model(name), shape):.2f}"
        size = "-" if shape is None else "×".join(map(str, shape))
        print(f"{name:<28} {params / 1e6:>9.2f}M {flops:>9}  {size:<12} {preset.description}")
    print("\nGFLOPs: multiply-adds of one forward pass (as the papers count), attention matmuls included, "
          "counted with torch.utils.flop_counter.FlopCounterMode.")
    return 0

