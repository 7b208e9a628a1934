"""vitkit RT-DETR vs Hugging Face RTDetrForObjectDetection: training-step and inference throughput on CPU.

Both models have the same shape and the same random weights (HF's RTDetrResNet = PResNet-vd backbone, converted into
vitkit's timm ResNet-D through ``create_model(..., checkpoint=...)``: ``vitkit.bench.hf_pairs.rtdetr_models``, the
pairing scripts/gpu_check.py measures on a GPU; the outputs are checked to agree, queries paired
by the encoder token they were selected from, as in tests/models/test_rtdetr.py). A training step is timm's
definition: forward + loss + backward + AdamW step, with 100 contrastive denoising queries in both (vitkit:
``make_denoising_group`` + ``RTDETRCriterion``; HF: its built-in loss). The models run alternately in one process
after warm-up and the medians are compared, so load from other processes hits both alike; wall-clock and the
process's CPU time are both reported, and peak resident memory of the process (both models live in it, so it is an
upper bound for either).

    PYTHONPATH=. python scripts/bench_rtdetr_vs_hf.py                        # r50vd, batch 2, 640×640
    PYTHONPATH=. python scripts/bench_rtdetr_vs_hf.py --preset rtdetr_r18vd --repeats 3 --threads 1

Measured on the 2-core development machine, quiet (no other jobs), 2026-12-06 (torch 2.14.1, transformers 5.24.0;
``--preset rtdetr_r50vd --repeats 3 --threads 2``, batch 2, 640×640; outputs equal to 7.6e-6)::

    | median of              | vitkit (s) |   HF (s) | speed-up | paired |
    | train (wall, n=3)      |      3.799 |    4.414 |    1.16x |  1.16x |
    | train (CPU, n=3)       |      7.557 |    8.788 |    1.16x |  1.16x |
    | infer (wall, n=3)      |      1.175 |    1.551 |    1.32x |  1.31x |
    | infer (CPU, n=3)       |      2.336 |    3.089 |    1.32x |  1.32x |

Peak resident memory of the process holding both models: 4528 MiB. Both spend more than half of a training step in
the same convolutions and their backward (torch.profiler, 384², 1 thread: 1.6 s of vitkit's 3.5 s, 1.7 s of HF's
3.6 s), which bounds the training ratio; the issue's 1.2x target is met for inference, not for training. An
earlier run on the machine shared with other jobs (load ~12) gave 1.21x wall / 1.06x CPU for training and 1.43x /
1.34x for inference.
"""

from __future__ import annotations

import argparse
import resource
import statistics

import torch

from vitkit.bench.hf_pairs import alternate, rtdetr_models


def make_targets(batch: int, num_classes: int, boxes_per_image: int):
    g = torch.Generator().manual_seed(0)
    targets = []
    for _ in range(batch):
        centre = torch.rand(boxes_per_image, 2, generator=g) * 0.5 + 0.25
        wh = torch.rand(boxes_per_image, 2, generator=g) * 0.3 + 0.05
        targets.append({"boxes": torch.cat([centre, wh], 1),
                        "labels": torch.randint(0, num_classes, (boxes_per_image,), generator=g)})
    return targets


@torch.no_grad()
def check_equal(ours, hf, images) -> float:
    a, b = ours.eval()(images), hf.eval()(pixel_values=images)
    tokens = [torch.cat(x, -1) for x in ((a["enc_outputs"]["pred_logits"], a["enc_outputs"]["pred_boxes"]),
                                          (b.enc_topk_logits, b.enc_topk_bboxes))]
    pairs = torch.cdist(tokens[1], tokens[0], compute_mode="donot_use_mm_for_euclid_dist").argmin(-1)  # (B, Q)
    logits, boxes = (x.gather(1, pairs[..., None].expand(-1, -1, x.shape[-1])) for x in (a["pred_logits"],
                                                                                         a["pred_boxes"]))
    return max((logits - b.logits).abs().max().item(), (boxes - b.pred_boxes).abs().max().item())


def step_fns(ours, hf, cfg, images, targets):
    from vitkit.detection import RTDETRCriterion, make_denoising_group

    criterion = RTDETRCriterion(cfg.num_classes)
    opt_ours = torch.optim.AdamW([p for p in ours.parameters() if p.requires_grad], lr=1e-4, weight_decay=1e-4)
    opt_hf = torch.optim.AdamW([p for p in hf.parameters() if p.requires_grad], lr=1e-4, weight_decay=1e-4)
    hf_labels = [{"class_labels": t["labels"], "boxes": t["boxes"]} for t in targets]

    def train_ours():
        dn = make_denoising_group(targets, ours.denoising_class_embed, num_queries=cfg.num_queries,
                                  num_denoising=cfg.num_denoising)
        loss = criterion(ours(images, denoising=dn), targets, dn)["loss"]
        opt_ours.zero_grad(set_to_none=True)
        loss.backward()
        opt_ours.step()

    def train_hf():
        loss = hf(pixel_values=images, labels=hf_labels).loss
        opt_hf.zero_grad(set_to_none=True)
        loss.backward()
        opt_hf.step()

    @torch.no_grad()
    def infer_ours():
        ours(images)

    @torch.no_grad()
    def infer_hf():
        hf(pixel_values=images)

    return {"train": (train_ours, train_hf), "infer": (infer_ours, infer_hf)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="rtdetr_r50vd")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = PyTorch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours, hf, cfg = rtdetr_models(args.preset)
    images = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    diff = check_equal(ours, hf, images)
    print(f"{args.preset} ({cfg.backbone}), batch {args.batch}, {args.size}x{args.size}, "
          f"{torch.get_num_threads()} threads; max |vitkit - HF| on logits/boxes: {diff:.2e}")
    fns = step_fns(ours, hf, cfg, images, make_targets(args.batch, cfg.num_classes, 5))
    print(f"| {'median of':<22} | {'vitkit (s)':>10} | {'HF (s)':>8} | {'speed-up':>8} | {'paired':>6} |")
    print(f"|{'-' * 24}|{'-' * 12}|{'-' * 10}|{'-' * 10}|{'-' * 8}|")
    for name, (fa, fb) in fns.items():
        for m in (ours, hf):
            m.train(name == "train")
        ta, tb = alternate(fa, fb, args.warmup, args.repeats)
        for clock, i in (("wall", 0), ("CPU", 1)):
            ma, mb = statistics.median(t[i] for t in ta), statistics.median(t[i] for t in tb)
            paired = statistics.median(b[i] / a[i] for a, b in zip(ta, tb, strict=True))
            print(f"| {f'{name} ({clock}, n={args.repeats})':<22} | {ma:>10.3f} | {mb:>8.3f} | {mb / ma:>7.2f}x | "
                  f"{paired:>5.2f}x |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"speed-up = HF median / vitkit median; paired = median of HF / vitkit over back-to-back runs. "
          f"Peak resident memory of the process (both models): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
