"""List the model presets with their parameters and GFLOPs."""

from __future__ import annotations

import argparse
import dataclasses


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'vit_*'")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP count (faster)")


def run(args: argparse.Namespace) -> int:
    import torch

    from vitkit.bench.flops import count_gflops
    from vitkit.models import create_model, get_preset, list_models

    names = list_models(args.pattern)
    if not names:
        print(f"no preset matches {args.pattern!r}")
        return 1
    print(f"{'preset':<28} {'params':>10} {'GFLOPs':>9}  {'input':<12} description")
    for name in names:
        preset = get_preset(name)
        fields = {f.name: getattr(preset.config, f.name) for f in dataclasses.fields(preset.config)}
        shape = _input_shape(fields) or getattr(preset.model_cls, "reference_input_shape", None)
        with torch.device("meta"):
            params = sum(p.numel() for p in create_model(name).parameters())
        flops = "-" if args.no_flops or shape is None else f"{count_gflops(create_model(name), shape):.2f}"
        size = "-" if shape is None else "×".join(map(str, shape))
        print(f"{name:<28} {params / 1e6:>9.2f}M {flops:>9}  {size:<12} {preset.description}")
    print("\nGFLOPs: multiply-adds of one forward pass (as the papers count), attention matmuls included, "
          "counted with torch.utils.flop_counter.FlopCounterMode.")
    return 0


def _input_shape(fields: dict) -> tuple[int, ...] | None:
    size = fields.get("img_size") or fields.get("image_size")
    if size is None:
        return None
    return (fields.get("in_chans", 3), size, size)
