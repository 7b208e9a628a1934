"""vitkit vs timm ViT throughput, side by side in one process, alternating.

A training step is forward + cross-entropy + backward + AdamW step on random input (timm's benchmark.py
definition); inference is a forward pass under ``torch.inference_mode``. Both models hold the same weights (timm's
random init loaded into vitkit). After warm-up, the two models run in alternation for ``--repeats`` rounds of
``--steps`` steps each; the report gives the median images/s of each and their ratio (vitkit / timm; > 1 means
vitkit is faster).

    python scripts/bench_vit_vs_timm.py --model vit_small_patch16_224 --batch 16 --size 224
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch
import torch.nn.functional as F

from vitkit import create_model


def train_step(model, opt, x, y):
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def timed(fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vit_small_patch16_224")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=3, help="steps per timed round")
    p.add_argument("--repeats", type=int, default=7, help="alternating rounds per model and mode")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    ref = timm.create_model(args.model, pretrained=False, img_size=args.size)
    ours = create_model(args.model, img_size=args.size)
    ours.load_state_dict(ref.state_dict())
    models = {"vitkit": ours, "timm": ref}
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, ref.num_classes, (args.batch,))

    results = {}
    for mode in ("train", "infer"):
        fns = {}
        for name, model in models.items():
            if mode == "train":
                model.train()
                opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
                fns[name] = lambda m=model, o=opt: train_step(m, o, x, y)
            else:
                model.eval()

                def infer(m=model):
                    with torch.inference_mode():
                        m(x)

                fns[name] = infer
        for fn in fns.values():  # warm-up
            timed(fn, 2)
        rates = {name: [] for name in fns}
        for r in range(args.repeats):
            order = list(fns) if r % 2 == 0 else list(fns)[::-1]
            for name in order:
                rates[name].append(args.batch * args.steps / timed(fns[name], args.steps))
        results[mode] = {name: statistics.median(v) for name, v in rates.items()}

    print(f"{args.model}, batch {args.batch}, {args.size}×{args.size}, fp32, CPU ({args.threads} threads), "
          f"median of {args.repeats} alternating rounds × {args.steps} steps")
    print(f"{'mode':<10} {'vitkit img/s':>13} {'timm img/s':>11} {'ratio':>7}")
    for mode, r in results.items():
        print(f"{mode:<10} {r['vitkit']:>13.2f} {r['timm']:>11.2f} {r['vitkit'] / r['timm']:>7.3f}")


if __name__ == "__main__":
    main()
